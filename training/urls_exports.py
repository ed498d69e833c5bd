from django.urls import path

from training.views import exports

urlpatterns = [
    path("<slug:slug>/exports/", exports.export_list, name="export_list"),
    path("<slug:slug>/exports/v<int:version>/", exports.export_detail, name="export_detail"),
    path("<slug:slug>/exports/v<int:version>/download/", exports.export_download, name="export_download"),
    path("<slug:slug>/exports/v<int:version>/files/<str:name>", exports.export_download, name="export_file"),
]
