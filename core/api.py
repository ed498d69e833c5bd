"""API plumbing every DRF view shares: the error schema, the exception handler that produces it,
the pagination (``REST_FRAMEWORK`` in settings names both), input validation
(:func:`validated_input`, :func:`parse_query`).

Every 4xx answers one shape::

    {"error": "<code>", "detail": "<message>"[, "field": "<name>"][, "details": {...}]}

``ServiceError`` carries its own code, field and details; DRF's own errors (validation,
authentication, permission, throttling, parse errors) are mapped onto the same keys, with a
validation error's full per-field messages under ``details``.

This module must not import ``rest_framework.generics`` or views: DRF imports the default
pagination class while ``rest_framework.generics`` is still loading.
"""

from __future__ import annotations

from rest_framework import exceptions, serializers
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import exception_handler as drf_exception_handler

from annotate.errors import InvalidInput, ServiceError


class ErrorSerializer(serializers.Serializer):
    """The error schema (for the OpenAPI document)."""

    error = serializers.CharField()
    detail = serializers.CharField()
    field = serializers.CharField(required=False)
    details = serializers.JSONField(required=False)


ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer}


def _first_message(detail: object, path: str = "") -> tuple[str, str]:
    """The first (field path, message) in a DRF validation ``detail`` (nested dicts and lists)."""
    if isinstance(detail, dict):
        for key, value in detail.items():
            name = f"{path}.{key}" if path else str(key)
            return _first_message(value, path if key == api_settings.NON_FIELD_ERRORS_KEY else name)
        return path, "Invalid input."
    if isinstance(detail, list):
        for value in detail:
            return _first_message(value, path)
        return path, "Invalid input."
    return path, str(detail)


def error_payload(exc: exceptions.APIException) -> dict:
    """``exc`` in the error schema."""
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_message(exc.detail)
        payload: dict = {"error": "invalid", "detail": message}
        if field:
            payload["field"] = field
        payload["details"] = exc.detail
        return payload
    if isinstance(exc.detail, (dict, list)):  # an APIException raised with structured detail
        return {"error": exc.default_code, "detail": str(exc.default_detail), "details": exc.detail}
    return {"error": str(exc.detail.code or exc.default_code), "detail": str(exc.detail)}


class ServiceRefusal(exceptions.APIException):
    """A ``ServiceError`` raised where DRF only expects its own ``APIException``: a permission's
    refusal. DRF asks permissions outside the view too (the browsable API's forms, the OPTIONS
    metadata) and only treats an ``APIException`` as "not allowed"; anything else there is a 500.
    The exception handler answers it exactly as the service error it carries."""

    def __init__(self, error: ServiceError) -> None:
        self.error = error
        self.status_code = error.status_code
        super().__init__(detail=error.message, code=error.code)


def api_exception_handler(exc: Exception, context: dict) -> Response | None:
    """The REST framework's ``EXCEPTION_HANDLER``: service and DRF errors in the error schema, with
    DRF's headers (``WWW-Authenticate``, ``Retry-After``); anything else propagates (a 500)."""
    if isinstance(exc, ServiceRefusal):
        exc = exc.error
    if isinstance(exc, ServiceError):
        return Response(exc.as_dict(), status=exc.status_code)
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.APIException):
        response.data = error_payload(exc)
    return response


def validated_input(serializer_class: type[serializers.Serializer], data: object) -> dict:
    """``data`` (a request body or query) validated by ``serializer_class``: its validated data, or
    a 400 in the error schema with every field's messages under ``details``."""
    ser = serializer_class(data=data)
    if not ser.is_valid():
        raise exceptions.ValidationError(ser.errors)
    return ser.validated_data


def validated_as_service_input(serializer_class: type[serializers.Serializer], data: object) -> dict:
    """``data`` validated by ``serializer_class``, the first problem raised as ``InvalidInput``
    (``"<field>: <message>"``, its ``field``, every field's messages under ``details``), as every
    service refusal is: for bodies that a page and an API view both accept."""
    serializer = serializer_class(data=data)
    if not serializer.is_valid():
        field, errors = next(iter(serializer.errors.items()))
        message = errors[0] if isinstance(errors, list) and errors else str(errors)
        raise InvalidInput(f"{field}: {message}", field=field, details=serializer.errors)
    return serializer.validated_data


def parse_query(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    """Validate query parameters with a serializer (a 400 in the error schema when they are bad)."""
    return validated_input(serializer_class, request.query_params)


def paginated_response(request: Request, view: object, items, serialize) -> Response:
    """A page of ``items`` (a queryset or list) as ``{"count", "next", "previous", "results"}``,
    each item through ``serialize``: the default pagination for views that are not generic lists."""
    paginator = BoundedLimitOffsetPagination()
    page = paginator.paginate_queryset(items, request, view=view)
    return paginator.get_paginated_response([serialize(item) for item in page])


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    """The default pagination: LimitOffset with bounds, ``limit`` at most 1000 (default
    ``PAGE_SIZE``), ``offset`` clamped to 10**9 (a huge integer would overflow the database's
    integer type). A ``limit`` below 1, an ``offset`` below 0 or either not a whole number is a 400
    naming the parameter, for every list."""

    max_limit = 1000
    max_offset = 10**9

    @staticmethod
    def _whole_number(request: Request, name: str, *, least: int) -> int | None:
        """The query parameter ``name`` as an integer of at least ``least``; None when absent or
        empty; a 400 naming it otherwise (it was silently replaced by the default)."""
        raw = request.query_params.get(name, "").strip()
        if not raw:
            return None
        try:
            value = int(raw)
        except ValueError:
            value = None
        if value is None or value < least:
            raise exceptions.ValidationError(
                {name: [f"{name} must be a whole number of at least {least}, not {raw[:40]!r}."]}
            )
        return value

    def get_limit(self, request: Request) -> int | None:
        limit = self._whole_number(request, self.limit_query_param, least=1)
        return self.default_limit if limit is None else min(limit, self.max_limit)

    def get_offset(self, request: Request) -> int:
        offset = self._whole_number(request, self.offset_query_param, least=0)
        return 0 if offset is None else min(offset, self.max_offset)
