"""usvid: breast-ultrasound scan videos -> LA-Net (joint lesion localisation + classification)."""

__version__ = "0.1.0"
