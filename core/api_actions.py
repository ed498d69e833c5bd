"""The plumbing of an API action on one object of a project (a job's cancel, retry, resume), kept
apart from ``core.api``, which DRF imports while ``rest_framework.generics`` is still loading.

:class:`ProjectObjectActionApi`: a POST without a body that finds the object named in the URL,
applies one service to it as the caller and answers the object as its listing shows it. A
subclass writes ``target(**url_kwargs)`` (the object; 404 when it is not the project's),
``act(obj, actor)`` (the service) and ``row_data(obj)`` (the answer), names the
``row_serializer`` that documents the answer, and documents the POST with ``action_summary``,
``action_description``, ``action_operation_id`` and ``action_errors``; ``action_status`` is the
answer's status (200 unless the action makes a new object)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response

from core.access import ProjectApiView
from core.api_schema import document_operation, errors


class ProjectObjectActionApi(ProjectApiView):
    row_serializer: type[serializers.Serializer]
    action_summary: str
    action_description: str
    action_operation_id: str | None = None  # None: drf-spectacular names it
    action_errors: tuple[int, ...] = (401, 403, 404, 409)
    action_status: int = status.HTTP_200_OK

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if not hasattr(cls, "action_summary"):  # a base for one kind of object's actions
            return
        document_operation(
            cls,
            "post",
            "action",
            request=None,
            responses={cls.action_status: cls.row_serializer, **errors(*cls.action_errors)},
        )

    def target(self, **url_kwargs: Any) -> Any:
        raise NotImplementedError

    def act(self, obj: Any, actor: Any) -> Any:
        raise NotImplementedError

    def row_data(self, row: Any) -> dict:
        raise NotImplementedError

    def post(self, request: Request, **url_kwargs: Any) -> Response:
        obj = self.act(self.target(**url_kwargs), request.user)
        return Response(self.row_data(obj), status=self.action_status)
