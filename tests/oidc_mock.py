"""A small OpenID Connect provider for tests (standard library + joserfc, which Authlib needs).

A real HTTP/1.1 server on 127.0.0.1 (random free port) in a background thread, so
Streamlit's own `st.login()` (Authlib's Starlette client over httpx) runs the whole
authorization-code flow against it, offline::

    with MockOIDC(email="dana@corp.example", name="Dana") as idp:
        idp.secrets_toml(redirect_uri="http://localhost:8501/oauth2callback")  # [auth] text
        ...
        idp.token_requests[0]["code_verifier"]

Endpoints:
  GET  /.well-known/openid-configuration   discovery (`server_metadata_url`)
  GET  /authorize    approves at once, as the configured person: 302 to `redirect_uri`
                     with `code` and `state`; the request's `nonce` and PKCE
                     `code_challenge` are kept with the code
  POST /token        code (once, same redirect_uri, client id + secret by HTTP Basic or
                     form, PKCE S256 verifier) → `access_token` and an RS256 `id_token`
                     carrying iss, aud, sub, email, name, iat, exp and the nonce
  GET  /jwks         the public signing key
  GET  /userinfo     the person's claims for `Authorization: Bearer <access_token>`
  GET  /logout       end_session_endpoint: 302 to `post_logout_redirect_uri`

Refusals are OAuth-style JSON errors (400/401) and are kept in `errors`, so a test can
show why a sign-in did not happen. The person can be changed between sign-ins
(`idp.person = Person(...)`).

Recorded (appends are atomic under the GIL): `authorize_requests` (query dicts),
`token_requests` (form dicts), `userinfo_requests`, `logout_requests`, `errors`.
"""
from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

CLIENT_ID = "writer-test-client"
CLIENT_SECRET = "writer-test-secret"  # noqa: S105 - a test value, never a real secret
TOKEN_LIFETIME_S = 3600


@dataclass(frozen=True)
class Person:
    """Who /authorize signs in (no login form: a test provider approves at once)."""

    email: str | None = "oidc.person@corp.example"
    sub: str = "mock-subject-0001"
    name: str = "Mock Person"


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str | None
    challenge_method: str | None
    person: Person


def _with_query(url: str, params: dict[str, str]) -> str:
    parts = urlsplit(url)
    query = "&".join(filter(None, [parts.query, urlencode(params)]))
    return urlunsplit(parts._replace(query=query))


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class MockOIDC:
    def __init__(self, *, email: str | None = "oidc.person@corp.example",
                 sub: str = "mock-subject-0001", name: str = "Mock Person",
                 client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET,
                 host: str = "127.0.0.1"):
        self.person = Person(email=email, sub=sub, name=name)
        self.client_id, self.client_secret, self.host = client_id, client_secret, host
        self.key = RSAKey.generate_key(2048, parameters={"kid": secrets.token_hex(8),
                                                         "use": "sig", "alg": "RS256"})
        self._grants: dict[str, _Grant] = {}
        self._access: dict[str, Person] = {}
        self._lock = threading.Lock()
        self.authorize_requests: list[dict] = []
        self.token_requests: list[dict] = []
        self.userinfo_requests: list[str] = []
        self.logout_requests: list[dict] = []
        self.errors: list[str] = []
        self._server: ThreadingHTTPServer | None = None
        self.issuer = ""

    # ---- lifecycle ---------------------------------------------------------------------

    def start(self) -> MockOIDC:
        self._server = ThreadingHTTPServer((self.host, 0), _handler_for(self))
        self._server.daemon_threads = True
        self.issuer = f"http://{self.host}:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                         name="mock-oidc", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> MockOIDC:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- what an app is configured with --------------------------------------------------

    @property
    def metadata_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def metadata(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "userinfo_endpoint": f"{self.issuer}/userinfo",
            "end_session_endpoint": f"{self.issuer}/logout",
            "response_types_supported": ["code"],
            "grant_types_supported": ["authorization_code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic",
                                                      "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nonce", "email",
                                 "email_verified", "name"],
        }

    def secrets_toml(self, redirect_uri: str, cookie_secret: str | None = None) -> str:
        """The `[auth]` section of `.streamlit/secrets.toml` for an app using this provider."""
        cookie_secret = cookie_secret or secrets.token_urlsafe(32)
        return (f'[auth]\nredirect_uri = "{redirect_uri}"\n'
                f'cookie_secret = "{cookie_secret}"\n'
                f'client_id = "{self.client_id}"\nclient_secret = "{self.client_secret}"\n'
                f'server_metadata_url = "{self.metadata_url}"\n')

    # ---- tokens ----------------------------------------------------------------------------

    def claims(self, person: Person) -> dict:
        claims = {"sub": person.sub, "name": person.name}
        if person.email is not None:
            claims.update(email=person.email, email_verified=True)
        return claims

    def id_token(self, grant: _Grant) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": grant.client_id, "iat": now,
                  "exp": now + TOKEN_LIFETIME_S, "auth_time": now, **self.claims(grant.person)}
        if grant.nonce is not None:
            claims["nonce"] = grant.nonce
        header = {"alg": "RS256", "kid": self.key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self.key, algorithms=["RS256"])

    def jwks(self) -> dict:
        return {"keys": [self.key.as_dict(private=False)]}

    # ---- the endpoints' logic (called by the handler) ------------------------------------

    def authorize(self, query: dict) -> tuple[int, dict, bytes]:
        self.authorize_requests.append(query)
        redirect_uri = query.get("redirect_uri", "")
        if query.get("client_id") != self.client_id or not redirect_uri.startswith("http"):
            return self._error(400, "invalid_request", "unknown client_id or no redirect_uri")
        if query.get("response_type") != "code" or "openid" not in query.get("scope", "").split():
            return self._error(400, "unsupported_response_type",
                               "only response_type=code with scope openid")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._grants[code] = _Grant(self.client_id, redirect_uri, query.get("nonce"),
                                        query.get("code_challenge"),
                                        query.get("code_challenge_method"), self.person)
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        return 302, {"Location": _with_query(redirect_uri, params)}, b""

    def token(self, form: dict, authorization: str | None) -> tuple[int, dict, bytes]:
        self.token_requests.append(form)
        client_id, client_secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(authorization[6:]).decode("utf-8")
            except ValueError:
                decoded = ":"
            client_id, _, client_secret = decoded.partition(":")
        if (client_id, client_secret) != (self.client_id, self.client_secret):
            return self._error(401, "invalid_client", "wrong client id or secret")
        if form.get("grant_type") != "authorization_code":
            return self._error(400, "unsupported_grant_type", "only authorization_code")
        with self._lock:
            grant = self._grants.pop(form.get("code", ""), None)  # a code works once
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return self._error(400, "invalid_grant", "unknown or used code, or another redirect_uri")
        if grant.challenge is not None:
            verifier = form.get("code_verifier", "")
            if grant.challenge_method != "S256" or _s256(verifier) != grant.challenge:
                return self._error(400, "invalid_grant", "PKCE code_verifier does not match")
        access_token = secrets.token_urlsafe(24)
        with self._lock:
            self._access[access_token] = grant.person
        body = {"access_token": access_token, "token_type": "Bearer",
                "expires_in": TOKEN_LIFETIME_S, "scope": "openid email profile",
                "id_token": self.id_token(grant)}
        return 200, {}, json.dumps(body).encode()

    def userinfo(self, authorization: str | None) -> tuple[int, dict, bytes]:
        token = (authorization or "").partition(" ")[2]
        self.userinfo_requests.append(token)
        person = self._access.get(token)
        if person is None:
            return self._error(401, "invalid_token", "unknown access token")
        return 200, {}, json.dumps(self.claims(person)).encode()

    def logout(self, query: dict) -> tuple[int, dict, bytes]:
        self.logout_requests.append(query)
        target = query.get("post_logout_redirect_uri")
        if not target:
            return 200, {"Content-Type": "text/plain"}, b"signed out"
        return 302, {"Location": target}, b""

    def _error(self, status: int, error: str, description: str) -> tuple[int, dict, bytes]:
        self.errors.append(f"{error}: {description}")
        body = json.dumps({"error": error, "error_description": description}).encode()
        return status, {}, body


def _handler_for(idp: MockOIDC) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            parts = urlsplit(self.path)
            query = dict(parse_qsl(parts.query, keep_blank_values=True))
            if parts.path == "/.well-known/openid-configuration":
                self._answer(200, {}, json.dumps(idp.metadata()).encode())
            elif parts.path == "/jwks":
                self._answer(200, {}, json.dumps(idp.jwks()).encode())
            elif parts.path == "/authorize":
                self._answer(*idp.authorize(query))
            elif parts.path == "/userinfo":
                self._answer(*idp.userinfo(self.headers.get("Authorization")))
            elif parts.path == "/logout":
                self._answer(*idp.logout(query))
            else:
                self._answer(404, {}, b'{"error": "not_found"}')

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode("utf-8", "replace")
            if urlsplit(self.path).path != "/token":
                self._answer(404, {}, b'{"error": "not_found"}')
                return
            form = dict(parse_qsl(body, keep_blank_values=True))
            self._answer(*idp.token(form, self.headers.get("Authorization")))

        def _answer(self, status: int, headers: dict, body: bytes) -> None:
            self.send_response(status)
            headers = {"Content-Type": "application/json", "Cache-Control": "no-store",
                       **headers, "Content-Length": str(len(body))}
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, fmt: str, *args: object) -> None:
            pass

    return Handler
