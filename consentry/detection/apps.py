from django.apps import AppConfig


class DetectionConfig(AppConfig):
    name = "consentry.detection"
    label = "detection"
