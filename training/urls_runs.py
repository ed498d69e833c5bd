from django.urls import path
from django.views.generic import RedirectView

from training.views import runs

urlpatterns = [
    # The project nav links /training/<slug>/ ; runs are the training landing page.
    path("<slug:slug>/", RedirectView.as_view(pattern_name="training:run_list"), name="training_home"),
    path("<slug:slug>/runs/", runs.run_list, name="run_list"),
    path("<slug:slug>/runs/<int:run_id>/", runs.run_detail, name="run_detail"),
    path("<slug:slug>/runs/<int:run_id>/status.json", runs.run_status_json, name="run_status"),
    path("<slug:slug>/runs/<int:run_id>/cancel/", runs.run_cancel_view, name="run_cancel"),
    path("<slug:slug>/runs/<int:run_id>/resume/", runs.run_resume_view, name="run_resume"),
    path("<slug:slug>/runs/<int:run_id>/register/", runs.run_register_view, name="run_register"),
]
