# oxisd_auth_provider: Synapse password logins checked by oxisd's check_credentials endpoint.
#
# A Synapse module (the module API of Synapse >= 1.46; written and tested against 1.163), not a
# legacy `password_providers` entry. On an `m.login.password` login it asks oxisd
#
#   POST <endpoint>/_matrix-internal/identity/v1/check_credentials
#   Authorization: Bearer <shared_secret>            (only when shared_secret is configured)
#   {"user": {"id": "@alice:example.org", "password": "..."}}
#
# and, on {"auth": {"success": true, "mxid": ..., "profile": {...}}}, lets the user in as that
# mxid (which must be on this homeserver): the account is created on first login, its display
# name set from the directory, and the directory's emails and phone numbers are added to the
# account (missing ones added on every login; none is ever removed).
#
# homeserver.yaml:
#
#   modules:
#     - module: oxisd_auth_provider.OxisdAuthProvider
#       config:
#         endpoint: "http://127.0.0.1:8092"   # oxisd's auth listener (auth.hostname/auth.port)
#         shared_secret: "..."                # oxisd's auth.sharedSecret, if set
#         timeout: 10                         # seconds for the whole check
#         update_profile: true                # set the display name on every login
#         add_threepids: true                 # add the directory's emails/phone numbers
#
# See contrib/synapse/README.md. Any failure (oxisd unreachable, timeout, 401/429/other status,
# an answer that is not the documented JSON) is logged (never the password) and the login is
# refused by this module (Synapse then tries its other providers, e.g. its own password
# database if `password_config.localdb_enabled` is true).

import json
import logging
from typing import Any, Awaitable, Callable, Optional, Tuple

from twisted.internet import defer, reactor
from twisted.python.failure import Failure
from twisted.web.client import readBody
from twisted.web.http_headers import Headers

from synapse.module_api import (
    LoginResponse,
    ModuleApi,
    UserID,
    make_deferred_yieldable,
    run_in_background,
)
from synapse.module_api.errors import ConfigError, SynapseError

logger = logging.getLogger(__name__)

CHECK_PATH = "/_matrix-internal/identity/v1/check_credentials"
MEDIA = ("email", "msisdn")


def _timed_out(result: Any, timeout: float) -> Failure:
    return Failure(defer.TimeoutError(f"no answer within {timeout}s"))


class OxisdAuthConfig:
    def __init__(
        self,
        endpoint: str,
        shared_secret: Optional[str],
        timeout: float,
        update_profile: bool,
        add_threepids: bool,
    ) -> None:
        self.endpoint = endpoint
        self.shared_secret = shared_secret
        self.timeout = timeout
        self.update_profile = update_profile
        self.add_threepids = add_threepids


class OxisdAuthProvider:
    def __init__(self, config: OxisdAuthConfig, api: ModuleApi) -> None:
        self.config = config
        self.api = api
        self.url = config.endpoint + CHECK_PATH
        api.register_password_auth_provider_callbacks(
            auth_checkers={("m.login.password", ("password",)): self.check_password},
        )

    @staticmethod
    def parse_config(config: dict) -> OxisdAuthConfig:
        if not isinstance(config, dict):
            raise ConfigError("oxisd_auth_provider: config must be a mapping")
        endpoint = config.get("endpoint")
        if not isinstance(endpoint, str) or not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                "oxisd_auth_provider: `endpoint` must be the http(s) base URL of oxisd's auth "
                "listener, e.g. http://127.0.0.1:8092"
            )
        secret = config.get("shared_secret")
        if secret is not None and (not isinstance(secret, str) or not secret):
            raise ConfigError("oxisd_auth_provider: `shared_secret` must be a non-empty string")
        timeout = config.get("timeout", 10)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ConfigError("oxisd_auth_provider: `timeout` must be a positive number of seconds")
        flags = {}
        for key in ("update_profile", "add_threepids"):
            value = config.get(key, True)
            if not isinstance(value, bool):
                raise ConfigError(f"oxisd_auth_provider: `{key}` must be true or false")
            flags[key] = value
        unknown = set(config) - {"endpoint", "shared_secret", "timeout", *flags}
        if unknown:
            raise ConfigError(f"oxisd_auth_provider: unknown keys {sorted(unknown)}")
        return OxisdAuthConfig(
            endpoint=endpoint.rstrip("/"),
            shared_secret=secret,
            timeout=float(timeout),
            **flags,
        )

    # ---- the login ----

    async def check_password(
        self, username: str, login_type: str, login_dict: dict
    ) -> Optional[Tuple[str, Optional[Callable[[LoginResponse], Awaitable[None]]]]]:
        password = login_dict.get("password")
        if not isinstance(password, str) or not password:
            return None
        # The client gives a localpart or a full user id; oxisd is asked about the full id.
        if username.startswith("@"):
            try:
                asked = UserID.from_string(username)
            except SynapseError:
                return None
            if asked.domain != self.api.server_name:
                return None
            user_id = asked.to_string()
        else:
            user_id = self.api.get_qualified_user_id(username)

        answer = await self._check_credentials(user_id, password)
        if answer is None:
            return None
        mxid, profile = answer

        try:
            canonical = await self._ensure_user(mxid, profile)
        except Exception:
            logger.exception("oxisd_auth_provider: could not create the account %s", mxid)
            return None
        # The directory's profile: a failure here does not stop the login.
        try:
            await self._sync_profile(canonical, profile)
        except Exception:
            logger.exception("oxisd_auth_provider: could not update the profile of %s", canonical)
        return canonical, None

    async def _check_credentials(
        self, user_id: str, password: str
    ) -> Optional[Tuple[str, dict]]:
        """(mxid, profile) when oxisd accepts the credentials; None otherwise (logged)."""
        try:
            d = run_in_background(self._post, user_id, password)
            # Twisted's own timeout: cancels the request when oxisd does not answer in time.
            # Whatever the cancelled request fails with (Synapse's client turns the
            # CancelledError into other errors), the result is a TimeoutError.
            d.addTimeout(self.config.timeout, reactor, onTimeoutCancel=_timed_out)
            code, body = await make_deferred_yieldable(d)
        except defer.TimeoutError:
            logger.warning(
                "oxisd_auth_provider: no answer from %s within %ss (login of %s refused)",
                self.url,
                self.config.timeout,
                user_id,
            )
            return None
        except Exception as e:
            logger.warning(
                "oxisd_auth_provider: request to %s failed (login of %s refused): %s",
                self.url,
                user_id,
                type(e).__name__ + (f": {e}" if str(e) else ""),
            )
            return None

        if code == 401:
            logger.error(
                "oxisd_auth_provider: oxisd refused the shared secret (401): check that "
                "`shared_secret` is oxisd's auth.sharedSecret (login of %s refused)",
                user_id,
            )
            return None
        if code == 429:
            logger.warning("oxisd_auth_provider: oxisd rate-limits logins (429): %s refused", user_id)
            return None
        if code != 200:
            logger.error(
                "oxisd_auth_provider: unexpected HTTP %s from %s (login of %s refused)",
                code,
                self.url,
                user_id,
            )
            return None
        try:
            auth = body["auth"]
            success = auth["success"]
        except (TypeError, KeyError):
            success = None
        if not isinstance(success, bool):
            logger.error("oxisd_auth_provider: unexpected answer from %s (no auth.success)", self.url)
            return None
        if not success:
            logger.info("oxisd_auth_provider: oxisd refused the credentials of %s", user_id)
            return None
        mxid = auth.get("mxid")
        try:
            parsed = UserID.from_string(mxid) if isinstance(mxid, str) else None
        except SynapseError:
            parsed = None
        if parsed is None or parsed.domain != self.api.server_name:
            logger.error(
                "oxisd_auth_provider: oxisd accepted %s but answered mxid %r, not a user of %s; "
                "is oxisd's matrix.domain this server's name?",
                user_id,
                mxid,
                self.api.server_name,
            )
            return None
        profile = auth.get("profile")
        if not isinstance(profile, dict):
            profile = {}
        return parsed.to_string(), profile

    async def _post(self, user_id: str, password: str) -> Tuple[int, Any]:
        """POST check_credentials; (status, parsed JSON body or None).

        Not SimpleHttpClient.post_json_get_json: that logs the request body (the password) at
        DEBUG level. SimpleHttpClient.request logs the method and URL only.
        """
        headers = Headers(
            {
                b"Content-Type": [b"application/json"],
                b"Accept": [b"application/json"],
            }
        )
        if self.config.shared_secret:
            headers.addRawHeader(b"Authorization", b"Bearer " + self.config.shared_secret.encode())
        data = json.dumps({"user": {"id": user_id, "password": password}}).encode()
        response = await self.api.http_client.request("POST", self.url, data=data, headers=headers)
        raw = await make_deferred_yieldable(readBody(response))
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        return response.code, body

    # ---- the account ----

    async def _ensure_user(self, mxid: str, profile: dict) -> str:
        """The canonical id of the account `mxid`, created if it does not exist yet."""
        existing = await self.api.check_user_exists(mxid)
        if existing:
            return existing
        localpart = UserID.from_string(mxid).localpart
        display_name = profile.get("display_name")
        if not isinstance(display_name, str) or not display_name:
            display_name = None
        try:
            created = await self.api.register_user(localpart, displayname=display_name)
        except SynapseError:
            # Two first logins at once: the other one created it.
            existing = await self.api.check_user_exists(mxid)
            if existing:
                return existing
            raise
        logger.info("oxisd_auth_provider: created %s on first login", created)
        return created

    async def _sync_profile(self, user_id: str, profile: dict) -> None:
        user = UserID.from_string(user_id)
        display_name = profile.get("display_name")
        if self.config.update_profile and isinstance(display_name, str) and display_name:
            current = await self.api.get_profile_for_user(user.localpart)
            if current.display_name != display_name:
                await self.api.set_displayname(user, display_name)
        if self.config.add_threepids:
            await self._add_threepids(user_id, profile.get("three_pids"))

    async def _add_threepids(self, user_id: str, three_pids: Any) -> None:
        if not isinstance(three_pids, list):
            return
        have = {
            (t["medium"], t["address"]) for t in await self.api.get_threepids_for_user(user_id)
        }
        # Synapse's public module API can add emails only when it creates the account
        # (register_user(emails=...)), and never phone numbers. So both go through the
        # narrowest internal calls: the store's owner lookup (user_add_threepid is an upsert:
        # without this check it would move another account's address to this one) and
        # AuthHandler.add_threepid, which /account/3pid/add uses too (it lower-cases emails).
        store = self.api._hs.get_datastores().main
        auth_handler = self.api._hs.get_auth_handler()
        now = self.api._hs.get_clock().time_msec()
        for entry in three_pids:
            if not isinstance(entry, dict):
                continue
            medium, address = entry.get("medium"), entry.get("address")
            if medium not in MEDIA or not isinstance(address, str) or not address:
                continue
            if medium == "email":
                address = address.strip().lower()
            elif not address.isdigit():
                # Matrix's msisdn form: E.164 digits without '+'.
                logger.warning("oxisd_auth_provider: ignoring msisdn %r of %s", address, user_id)
                continue
            if (medium, address) in have:
                continue
            owner = await store.get_user_id_by_threepid(medium, address)
            if owner is not None and owner != user_id:
                logger.warning(
                    "oxisd_auth_provider: %s %s is on %s already; not added to %s",
                    medium,
                    address,
                    owner,
                    user_id,
                )
                continue
            await auth_handler.add_threepid(user_id, medium, address, now)
            have.add((medium, address))
            logger.info("oxisd_auth_provider: added %s %s to %s", medium, address, user_id)
