from django.contrib.auth import views as auth_views
from django.urls import include, path

from consentry.accounts import views
from consentry.staff import views as staff_views

urlpatterns = [
    path("login/", views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(next_page="/"), name="logout"),
    path("two-factor/", staff_views.two_factor, name="two-factor"),
    path("i18n/", include("django.conf.urls.i18n")),
]
