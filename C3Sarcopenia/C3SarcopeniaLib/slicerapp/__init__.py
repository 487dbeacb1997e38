"""The Slicer application's side of the module: the worker client, the dependency installer
and the sample-data registration. Unlike the rest of the Lib these use Qt and the running
Slicer application; the module file imports them, the command line never does."""
