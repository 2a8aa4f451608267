# Unit tests of oxisd_auth_provider against a fake ModuleApi (Synapse must be importable):
#
#   $E2E_HOME/venv/bin/python -m unittest discover -s contrib/synapse     (tests/e2e/run.sh does)
#
# The module against a real Synapse: the "directory" phase of tests/e2e.

import json
import logging
import unittest
from types import SimpleNamespace
from unittest import mock

from twisted.internet import defer

import oxisd_auth_provider as m
from synapse.module_api.errors import ConfigError, SynapseError

SERVER = "example.org"
PASSWORD = "alice-s3cret-password"
ALICE = {
    "display_name": "Alice Liddell",
    "three_pids": [
        {"medium": "email", "address": "Alice@Example.org"},
        {"medium": "msisdn", "address": "447700900123"},
        {"medium": "msisdn", "address": "+44 not digits"},
        {"medium": "carrier-pigeon", "address": "x"},
    ],
}


def ok(mxid="@alice:example.org", profile=ALICE):
    return 200, json.dumps({"auth": {"success": True, "mxid": mxid, "profile": profile}})


class FakeApi:
    """The parts of ModuleApi (and the internals) the module uses, in memory."""

    def __init__(self, answer):
        self.server_name = SERVER
        self.answer = answer  # (status, body text) or an exception
        self.requests = []
        self.users = {}  # user id -> display name
        self.threepids = {}  # (medium, address) -> user id
        self.auth_checkers = None
        self.http_client = SimpleNamespace(request=self._request)
        store = SimpleNamespace(get_user_id_by_threepid=self._owner)
        auth_handler = SimpleNamespace(add_threepid=self._add_threepid)
        self._hs = SimpleNamespace(
            get_datastores=lambda: SimpleNamespace(main=store),
            get_auth_handler=lambda: auth_handler,
            get_clock=lambda: SimpleNamespace(time_msec=lambda: 1000),
        )

    def register_password_auth_provider_callbacks(self, auth_checkers):
        self.auth_checkers = auth_checkers

    def get_qualified_user_id(self, username):
        return f"@{username}:{SERVER}"

    async def _request(self, method, url, data, headers):
        self.requests.append((method, url, json.loads(data), headers))
        if isinstance(self.answer, Exception):
            raise self.answer
        code, body = self.answer
        return SimpleNamespace(code=code, body=body.encode())

    async def check_user_exists(self, user_id):
        return user_id if user_id in self.users else None

    async def register_user(self, localpart, displayname=None):
        user_id = f"@{localpart}:{SERVER}"
        self.users[user_id] = displayname
        return user_id

    async def get_profile_for_user(self, localpart):
        return SimpleNamespace(display_name=self.users[f"@{localpart}:{SERVER}"])

    async def set_displayname(self, user, name):
        self.users[user.to_string()] = name

    async def get_threepids_for_user(self, user_id):
        return [{"medium": k[0], "address": k[1]} for k, v in self.threepids.items() if v == user_id]

    async def _owner(self, medium, address):
        return self.threepids.get((medium, address))

    async def _add_threepid(self, user_id, medium, address, validated_at):
        self.threepids[(medium, address)] = user_id


def config(**extra):
    return m.OxisdAuthProvider.parse_config(
        {"endpoint": "http://127.0.0.1:8092/", "shared_secret": "s3cret", **extra}
    )


def fake_read_body(response):
    return defer.succeed(response.body)


@mock.patch.object(m, "readBody", fake_read_body)
class LoginTest(unittest.TestCase):
    def login(self, api, username="alice", password=PASSWORD, cfg=None):
        provider = m.OxisdAuthProvider(cfg or config(), api)
        check = api.auth_checkers[("m.login.password", ("password",))]
        with self.assertLogs("oxisd_auth_provider", level="DEBUG") as logs:
            logging.getLogger("oxisd_auth_provider").debug("start")
            d = defer.ensureDeferred(check(username, "m.login.password", {"password": password}))
        self.assertTrue(d.called, "the check did not complete")
        for line in logs.output:
            self.assertNotIn(password, line)
        self.provider = provider
        self.logs = logs.output
        return d.result

    def test_first_login_creates_the_account_with_name_and_threepids(self):
        api = FakeApi(ok())
        self.assertEqual(self.login(api), ("@alice:example.org", None))
        method, url, body, headers = api.requests[0]
        self.assertEqual((method, url), ("POST", "http://127.0.0.1:8092" + m.CHECK_PATH))
        self.assertEqual(body, {"user": {"id": "@alice:example.org", "password": PASSWORD}})
        self.assertEqual(headers.getRawHeaders(b"Authorization"), [b"Bearer s3cret"])
        self.assertEqual(api.users, {"@alice:example.org": "Alice Liddell"})
        self.assertEqual(
            api.threepids,
            {
                ("email", "alice@example.org"): "@alice:example.org",
                ("msisdn", "447700900123"): "@alice:example.org",
            },
        )

    def test_later_login_adds_missing_threepids_and_updates_the_name(self):
        api = FakeApi(ok())
        api.users["@alice:example.org"] = "old name"
        api.threepids[("email", "alice@example.org")] = "@alice:example.org"
        api.threepids[("email", "kept@example.org")] = "@alice:example.org"
        self.assertEqual(self.login(api, "@alice:example.org"), ("@alice:example.org", None))
        self.assertEqual(api.users["@alice:example.org"], "Alice Liddell")
        self.assertEqual(len(api.threepids), 3)
        self.assertEqual(api.threepids[("msisdn", "447700900123")], "@alice:example.org")

    def test_no_secret_no_authorization_header(self):
        api = FakeApi(ok())
        cfg = m.OxisdAuthProvider.parse_config({"endpoint": "http://127.0.0.1:8092"})
        self.login(api, cfg=cfg)
        self.assertIsNone(api.requests[0][3].getRawHeaders(b"Authorization"))

    def test_update_profile_false_keeps_the_name(self):
        api = FakeApi(ok())
        api.users["@alice:example.org"] = "Mine"
        self.login(api, cfg=config(update_profile=False))
        self.assertEqual(api.users["@alice:example.org"], "Mine")

    def test_an_address_of_another_account_is_not_taken(self):
        api = FakeApi(ok())
        api.threepids[("email", "alice@example.org")] = "@other:example.org"
        self.assertEqual(self.login(api), ("@alice:example.org", None))
        self.assertEqual(api.threepids[("email", "alice@example.org")], "@other:example.org")
        self.assertEqual(api.threepids[("msisdn", "447700900123")], "@alice:example.org")

    def test_refusals(self):
        cases = {
            "success false": (200, '{"auth": {"success": false}}'),
            "401": (401, '{"errcode": "M_UNAUTHORIZED"}'),
            "429": (429, '{"errcode": "M_LIMIT_EXCEEDED"}'),
            "500": (500, "oops"),
            "not JSON": (200, "<html>"),
            "no auth": (200, "{}"),
            "success not a bool": (200, '{"auth": {"success": "true"}}'),
            "no mxid": (200, '{"auth": {"success": true}}'),
            "mxid of another server": ok("@alice:elsewhere.org"),
            "mxid not a user id": ok("alice"),
        }
        for name, answer in cases.items():
            with self.subTest(name):
                api = FakeApi(answer)
                self.assertIsNone(self.login(api))
                self.assertEqual(api.users, {})
                self.assertEqual(api.threepids, {})

    def test_transport_error_refuses(self):
        api = FakeApi(ConnectionRefusedError("refused"))
        self.assertIsNone(self.login(api))
        self.assertTrue(any("ConnectionRefusedError" in line for line in self.logs), self.logs)

    def test_user_of_another_server_is_not_asked(self):
        api = FakeApi(ok())
        self.assertIsNone(self.login(api, "@alice:elsewhere.org"))
        self.assertEqual(api.requests, [])

    def test_registration_failure_refuses(self):
        api = FakeApi(ok())

        async def fail(localpart, displayname=None):
            raise SynapseError(400, "User ID already taken.")

        api.register_user = fail
        self.assertIsNone(self.login(api))


class ConfigTest(unittest.TestCase):
    def test_defaults(self):
        c = m.OxisdAuthProvider.parse_config({"endpoint": "https://id.example.org/"})
        self.assertEqual(c.endpoint, "https://id.example.org")
        self.assertIsNone(c.shared_secret)
        self.assertEqual(c.timeout, 10.0)
        self.assertTrue(c.update_profile and c.add_threepids)

    def test_invalid(self):
        for bad in [
            {},
            {"endpoint": "127.0.0.1:8092"},
            {"endpoint": "http://x", "timeout": 0},
            {"endpoint": "http://x", "timeout": "10"},
            {"endpoint": "http://x", "shared_secret": ""},
            {"endpoint": "http://x", "update_profile": "yes"},
            {"endpoint": "http://x", "sharedSecret": "typo"},
        ]:
            with self.subTest(bad=bad), self.assertRaises(ConfigError):
                m.OxisdAuthProvider.parse_config(bad)


if __name__ == "__main__":
    unittest.main()
