"""CheXpert's table format: column names, label classes and their raw values.

Kept apart from the reader so that every module (phantom generator, splits,
metrics) can import the schema without pulling in I/O code.
"""

#: The 14 CheXpert observations, in the column order of CheXpert's CSV files.
CLASSES: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Opacity",
    "Lung Lesion",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

#: The five classes of the CheXpert competition (Irvin et al., 2019).
COMPETITION_CLASSES: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)

#: Columns before the labels, in CheXpert's order.
META_COLUMNS: tuple[str, ...] = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA")

COLUMNS: tuple[str, ...] = META_COLUMNS + CLASSES

#: Raw label values: positive, negative, uncertain. A blank cell means "not mentioned".
POSITIVE, NEGATIVE, UNCERTAIN = 1.0, 0.0, -1.0
LABEL_VALUES: tuple[float, ...] = (POSITIVE, NEGATIVE, UNCERTAIN)
#: Not a CheXpert value: the source dataset does not label this class at all (NIH ChestX-ray14 labels 8 of
#: the 14). The store's index keeps it so that every uncertainty policy masks it (no loss, no metric).
UNLABELLED = -9.0

SEX_VALUES: tuple[str, ...] = ("Male", "Female", "Unknown")
VIEW_VALUES: tuple[str, ...] = ("Frontal", "Lateral")
PROJECTION_VALUES: tuple[str, ...] = ("AP", "PA", "LL", "RL")

#: The ground-truth boxes of drawn findings (the phantoms' ``regions.csv``): the image's ``Path``, its class
#: (``label``) and the box as shares of the image side.
REGIONS = "regions.csv"
REGION_COLUMNS: tuple[str, ...] = ("Path", "label", "x0", "y0", "x1", "y1")
