"""AWS Signature Version 4 for the local runtime: signing the pipeline's own requests and verifying every request.

Verification rebuilds the request from what arrived (method, path and query as sent, the headers the client
listed in ``SignedHeaders``, the body) and has botocore's own signer (:class:`botocore.auth.SigV4Auth`) compute
the signature for the claimed date and scope with the runtime's secret; the two are compared with
:func:`hmac.compare_digest`. No crypto is written here: canonical request, string to sign and key derivation
are botocore's, the very code that signed the request in boto3.

The checks, and the errors AWS's JSON and REST-JSON services answer with (403; botocore turns them into a
``ClientError`` with that code):

* no ``Authorization`` header: ``MissingAuthenticationTokenException``;
* a malformed one (algorithm, missing ``Credential``/``SignedHeaders``/``Signature``, no date):
  ``IncompleteSignatureException``;
* an unknown access key id, or a session token (this runtime issues none): ``UnrecognizedClientException``;
* a scope for another region or service, a date more than 15 minutes off, or a signature that does not match:
  ``InvalidSignatureException``.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import cached_property
from urllib.parse import urlsplit

from botocore.auth import SIGNED_HEADERS_BLACKLIST, UNSIGNED_PAYLOAD, SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from safedeploy.serving.credentials import LocalCredentials
from safedeploy.serving.errors import ApiError

ALGORITHM = "AWS4-HMAC-SHA256"
TERMINATOR = "aws4_request"
MAX_SKEW = timedelta(minutes=15)
"""AWS refuses a request whose date is more than 15 minutes from its clock."""
_AMZ_DATE = "%Y%m%dT%H%M%SZ"
_AMZ_DATE_RE = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$")

SAGEMAKER_SERVICE = "sagemaker"
"""The signing name of both ``sagemaker`` and ``sagemaker-runtime`` (``signingName`` in botocore's models)."""
CODEDEPLOY_SERVICE = "codedeploy"
LOCAL_SERVICE = "safedeploy"
"""The scope of the runtime's own ``/_local/*`` calls (no AWS service has them)."""
CODEDEPLOY_TARGET_PREFIX = "CodeDeploy_20141006."


def service_for(path: str, target: str | None = None) -> str:
    """The service a request to ``path`` (with ``X-Amz-Target`` ``target``) must be signed for."""
    if path.startswith("/_local/"):
        return LOCAL_SERVICE
    if target is not None and target.startswith(CODEDEPLOY_TARGET_PREFIX):
        return CODEDEPLOY_SERVICE
    return SAGEMAKER_SERVICE


def sign(
    credentials: LocalCredentials,
    region: str,
    method: str,
    url: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The headers to send ``method url`` with: ``headers`` plus ``Host``, ``X-Amz-Date`` and ``Authorization``.

    For the pipeline's own plain-HTTP calls (urllib, http.client); boto3 clients sign themselves.
    """
    parts = urlsplit(url)
    sent = {"Host": parts.netloc, **(headers or {})}
    request = AWSRequest(method=method, url=url, data=body or b"", headers=sent)
    target = next((v for k, v in sent.items() if k.lower() == "x-amz-target"), None)
    signer = SigV4Auth(
        Credentials(credentials.access_key_id, credentials.secret_access_key), service_for(parts.path, target), region
    )
    signer.add_auth(request)
    return {name: str(value) for name, value in request.headers.items()}


@dataclass(frozen=True)
class SignedRequest:
    """A request as it arrived: method, target (path and query, as sent), headers in order, body."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes

    @cached_property
    def _by_name(self) -> dict[str, str]:
        joined: dict[str, str] = {}
        for name, value in self.headers:
            key = name.lower()
            joined[key] = f"{joined[key]},{value}" if key in joined else value
        return joined

    def header(self, name: str) -> str | None:
        """A header's values joined with ``,`` (None if absent); ``name`` in lower case."""
        return self._by_name.get(name)


def _denied(code: str, message: str) -> ApiError:
    return ApiError(403, code, message)


def _incomplete(message: str) -> ApiError:
    return _denied("IncompleteSignatureException", message)


def _invalid(message: str) -> ApiError:
    return _denied("InvalidSignatureException", message)


def _authorization_fields(value: str) -> dict[str, str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise _incomplete(f"Unsupported AWS 'algorithm': {algorithm!r}; this runtime accepts {ALGORITHM} only.")
    fields: dict[str, str] = {}
    for part in rest.split(","):
        name, equals, field_value = part.strip().partition("=")
        if equals:
            fields[name] = field_value
    missing = [name for name in ("Credential", "SignedHeaders", "Signature") if not fields.get(name)]
    if missing:
        required = " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
        raise _incomplete(f"{required} Authorization={value}")
    return fields


def _request_time(request: SignedRequest, signed: set[str]) -> tuple[str, datetime]:
    """The claimed signing time (``X-Amz-Date``, else ``Date``), which must itself be signed."""
    amz_date = request.header("x-amz-date")
    if amz_date is not None:
        match = _AMZ_DATE_RE.match(amz_date)
        when: datetime | None = None
        if match is not None:
            year, month, day, hour, minute, second = (int(part) for part in match.groups())
            with contextlib.suppress(ValueError):  # e.g. month 13
                when = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        if when is None:
            raise _incomplete(f"Date must be in ISO-8601 'basic format'. Got {amz_date!r}.")
        name = "x-amz-date"
    else:
        http_date = request.header("date")
        if http_date is None:
            raise _incomplete("Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
        try:
            when = parsedate_to_datetime(http_date).astimezone(UTC)
        except (TypeError, ValueError):
            raise _incomplete(f"Date header {http_date!r} is not an HTTP date.") from None
        name = "date"
    if name not in signed:
        raise _invalid(f"'{name}' must be a SignedHeader in the AWS Authorization.")
    return when.strftime(_AMZ_DATE), when


@dataclass(frozen=True)
class Verifier:
    """Checks requests against the runtime's credentials and region."""

    credentials: LocalCredentials
    region: str
    max_skew: timedelta = MAX_SKEW

    def verify(self, request: SignedRequest, service: str, now: datetime | None = None) -> None:
        """Return if ``request`` is signed by this runtime's key for ``service``; raise the AWS 403 otherwise."""
        authorization = request.header("authorization")
        if authorization is None:
            if "X-Amz-Signature=" in request.target or "X-Amz-Credential=" in request.target:
                raise _incomplete("Presigned URLs are not accepted here: sign the Authorization header.")
            raise _denied("MissingAuthenticationTokenException", "Missing Authentication Token")
        fields = _authorization_fields(authorization)
        scope = fields["Credential"].split("/")
        if len(scope) != 5:
            raise _incomplete(
                "Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, "
                f"got {fields['Credential']!r}"
            )
        key_id, day, region, scoped_service, terminator = scope
        if not hmac.compare_digest(key_id.encode(), self.credentials.access_key_id.encode()):
            raise _denied("UnrecognizedClientException", "The security token included in the request is invalid.")
        if request.header("x-amz-security-token") is not None:
            raise _denied(
                "UnrecognizedClientException",
                "The security token included in the request is invalid: this runtime issues no session tokens.",
            )
        if terminator != TERMINATOR:
            raise _invalid(f"Credential should be scoped with a valid terminator: '{TERMINATOR}', not {terminator!r}.")
        if region != self.region:
            raise _invalid(f"Credential should be scoped to a valid region, not {region!r}: this is {self.region!r}.")
        if scoped_service != service:
            raise _invalid(f"Credential should be scoped to correct service: {service!r}, not {scoped_service!r}.")
        signed = fields["SignedHeaders"].split(";")
        signed_set = set(signed)
        if "host" not in signed_set:
            raise _invalid("'Host' must be a SignedHeader in the AWS Authorization.")
        timestamp, when = _request_time(request, signed_set)
        if day != timestamp[:8]:
            raise _invalid(
                "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
                f"{day!r} != {timestamp[:8]!r}, from {timestamp!r}."
            )
        self._check_skew(timestamp, when, now or datetime.now(UTC))
        self._check_signature(request, service, timestamp, signed, fields["Signature"])

    def _check_skew(self, timestamp: str, when: datetime, now: datetime) -> None:
        current = now.strftime(_AMZ_DATE)
        minutes = int(self.max_skew.total_seconds() // 60)
        if when < now - self.max_skew:
            earliest = (now - self.max_skew).strftime(_AMZ_DATE)
            raise _invalid(
                f"Signature expired: {timestamp} is now earlier than {earliest} ({current} - {minutes} min.)"
            )
        if when > now + self.max_skew:
            latest = (now + self.max_skew).strftime(_AMZ_DATE)
            raise _invalid(
                f"Signature not yet current: {timestamp} is still later than {latest} ({current} + {minutes} min.)"
            )

    def _check_signature(
        self, request: SignedRequest, service: str, timestamp: str, signed: list[str], signature: str
    ) -> None:
        unsignable = sorted(set(signed) & set(SIGNED_HEADERS_BLACKLIST))
        if unsignable:
            raise _invalid(f"SignedHeaders lists headers SigV4 clients never sign: {', '.join(unsignable)}.")
        content_sha256 = request.header("x-amz-content-sha256")
        if content_sha256 is not None:
            if content_sha256 == UNSIGNED_PAYLOAD:
                raise _invalid("This runtime requires a signed payload, not UNSIGNED-PAYLOAD.")
            if content_sha256 != hashlib.sha256(request.body).hexdigest():
                raise _invalid("The provided 'x-amz-content-sha256' header does not match what was computed.")
        rebuilt = AWSRequest(method=request.method, url=f"http://{request.header('host')}{request.target}")
        for name, value in _signed_headers(request.headers, set(signed)):
            rebuilt.headers[name] = value  # HTTPHeaders: a repeated header is kept as several values
        missing = sorted(set(signed) - {name.lower() for name in rebuilt.headers})
        if missing:
            raise _invalid(f"SignedHeaders names headers the request does not carry: {', '.join(missing)}.")
        rebuilt.context["timestamp"] = timestamp
        signer = _Verifying(
            Credentials(self.credentials.access_key_id, self.credentials.secret_access_key), service, self.region
        )
        signer.body_sha256 = content_sha256 or hashlib.sha256(request.body).hexdigest()
        canonical = signer.canonical_request(rebuilt)
        expected = signer.signature(signer.string_to_sign(rebuilt, canonical), rebuilt)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise _invalid(
                "The request signature we calculated does not match the signature you provided. Check your AWS "
                "Secret Access Key and signing method. Consult the service documentation for details."
            )


class _Verifying(SigV4Auth):
    """botocore's signer, given the body's digest (computed once) instead of a prepared request to hash."""

    body_sha256 = ""

    def payload(self, request: AWSRequest) -> str:
        return self.body_sha256


def _signed_headers(headers: Iterable[tuple[str, str]], signed: set[str]) -> Iterable[tuple[str, str]]:
    return ((name, value) for name, value in headers if name.lower() in signed)
