"""The module's help and acknowledgement, as Slicer shows them above the panel."""

HELP_TEXT = """
<p>Skeletal muscle at the third cervical vertebra (C3) on a head-and-neck CT, and the lumbar
skeletal muscle index (SMI) estimated from it (Naser et al. 2022, Front Oncol 12:930432).</p>
<ol>
<li><b>Patient and CT.</b> Select the CT. Age, sex, height and weight are filled from the
DICOM tags when the CT came from the DICOM database; check and correct them.</li>
<li><b>Find C3.</b> A 3D network outlines the <i>C3 section</i>, a slab 33 mm thick centred on
C3, drawn see-through: check that it sits on C3 (count down from C1 and C2). The slice at its
centre becomes the <i>C3 slice</i>.</li>
<li><b>C3 slice.</b> Step it one slice towards the head or feet, or scroll the axial (red)
view and click <i>Use slice shown in axial view</i>.</li>
<li><b>Skeletal muscle.</b> A 2D network outlines the C3 muscle (paravertebral, SCM right, SCM
left) between -29 and 150 HU. Correct it in the Segment Editor: the results follow every edit
and undo. <i>SCM lost in nodes</i> counts the other SCM twice (Chargi et al.).</li>
<li><b>Results.</b> C3 CSA (cm&sup2;) and mean HU; L3 CSA = 27.304 + 1.363 C3 CSA - 0.671 age
+ 0.640 weight + 26.422 sex (female 1, male 2) (Swartz et al. 2016); SMI = L3 CSA /
height&sup2;; <i>depleted</i> below 52.4 (men) or 38.5 (women) cm&sup2;/m&sup2; (Prado).</li>
<li><b>Ground truth.</b> <i>Save as ground truth</i> writes the CT, the muscle and the slice (a
row of <tt>c3_levels.csv</tt> with your name): training data for your own models.</li>
</ol>
<p>The networks run in a separate process: Cancel stops them at once.
<b>Research software, not a medical device</b>: check every level and outline.</p>
"""

ACKNOWLEDGEMENT_TEXT = (
    "Implements Naser MA et al., Deep learning auto-segmentation of cervical skeletal muscle for "
    "sarcopenia analysis in patients with head and neck cancer, Front Oncol 2022;12:930432. L3 "
    "estimate: Swartz JE et al. 2016; cut-offs: Prado CM et al. 2008.")
