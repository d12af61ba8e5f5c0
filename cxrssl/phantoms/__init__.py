"""The phantom dataset: synthetic chest radiographs in CheXpert's exact format, with known answers.

Where to look:

* :mod:`~cxrssl.phantoms.dataset`: the dataset (labels drawn from CheXpert's
  label statistics, patients, studies and views, the zip or folder as CheXpert
  ships it): ``generate`` and ``PhantomConfig`` (params.yaml ``phantoms``);
* :mod:`~cxrssl.phantoms.render`: one radiograph (``render``);
* :mod:`~cxrssl.phantoms.findings`: one module per finding (its severity, what
  it does to the anatomy, what it draws on frontal and lateral views, the
  regions it reports) and the table ``FINDINGS`` that says in which order;
* :mod:`~cxrssl.phantoms.anatomy`: lungs, heart, mediastinum, soft tissue,
  bones, vessels, distractors and the exposure;
* :mod:`~cxrssl.phantoms.patient`, :mod:`~cxrssl.phantoms.draw`,
  :mod:`~cxrssl.phantoms.canvas`: the patient and pose, the drawing primitives
  in thorax coordinates, the canvas opacities are drawn into.
"""

from cxrssl.phantoms.patient import Patient, Region, sample_patient
from cxrssl.phantoms.render import VIEWS, render

__all__ = ["VIEWS", "Patient", "Region", "render", "sample_patient"]
