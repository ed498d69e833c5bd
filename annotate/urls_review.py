from django.urls import path

from annotate.views import review as views_review

app_name = "review"

urlpatterns = [
    path("projects/<slug:slug>/manage/review/", views_review.review_queue, name="queue"),
    path("projects/<slug:slug>/manage/review/action/", views_review.review_action, name="action"),
]
