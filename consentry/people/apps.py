from django.apps import AppConfig


class PeopleConfig(AppConfig):
    name = "consentry.people"
    label = "people"
    verbose_name = "People: profiles, friendships, posts"
