"""Stand-ins for what the running application provides: ``slicer.app``, ``slicer.modules``,
and the SampleData and PyTorchUtils modules, each method with the signature of Slicer 5.10
(checked to take what 5.8 takes too)."""

from __future__ import annotations

from qt import QObject


class Application(QObject):
    applicationName = "3D Slicer"

    def testingEnabled(self) -> bool:
        return True

    def processEvents(self, flags=None) -> None:
        pass


class SampleDataLogic:
    sources: dict[str, list[dict]] = {}

    @staticmethod
    def registerCustomSampleDataSource(category="Custom", sampleName=None, uris=None,
                                       fileNames=None, nodeNames=None, customDownloader=None,
                                       thumbnailFileName=None, loadFileTypes=None, loadFiles=None,
                                       loadFileProperties={}, checksums=None, loadFileType=None):
        if loadFileType is not None and loadFileTypes is not None:
            raise ValueError("loadFileType and loadFileTypes cannot be specified at the same time")
        SampleDataLogic.sources.setdefault(category, []).append(dict(
            sampleName=sampleName, uris=uris, fileNames=fileNames, nodeNames=nodeNames,
            thumbnailFileName=thumbnailFileName, checksums=checksums,
            loadFileTypes=loadFileTypes or loadFileType))


class PyTorchUtilsLogic:
    def installTorch(self, askConfirmation=False, forceComputationBackend=None,
                     torchVersionRequirement=None, torchvisionVersionRequirement=None):
        raise AssertionError("the tests never install torch")
