"""Connect to a Ray cluster for `--ray ADDRESS`, and when Ray's token authentication stops the
connection, say exactly what to set.

Why it is needed (Ray 2.60, checked against `ray start --head`): `ray start --head` turns token
authentication on whenever it finds a token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or
~/.ray/auth_token, which every earlier `ray.init()` that started a local cluster leaves behind),
but a driver sends its token to an address given explicitly (HOST:PORT, ray://HOST:PORT) only
when RAY_AUTH_MODE=token is set; `auto` turns it on by itself when a token is at hand. Ray then
retries for ~20 s and raises a bare "Failed to connect to Ray cluster at ...". rlxf does not send
the token on its own: which clusters get a token is Ray's (and the user's) policy.
"""

from __future__ import annotations

import os

AUTH_MODE = "RAY_AUTH_MODE"
TOKEN_SOURCES = ("~/.ray/auth_token, a file named by RAY_AUTH_TOKEN_PATH, or the token itself "
                 "in RAY_AUTH_TOKEN (`ray get-auth-token` prints it on the head node)")


def connect(ray, address: str) -> None:
    """ray.init for `address` ("local": start a one-machine cluster here); RuntimeError with
    what to set when the cluster wants a token this process does not send."""
    try:
        ray.init(address=None if address == "local" else address, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)
    except Exception as e:  # ConnectionError; AuthenticationError when the token is missing
        if token_refused(e):
            raise RuntimeError(token_help(address)) from None
        if isinstance(e, ConnectionError) and address.startswith("ray://") and not _token_mode():
            # Ray Client reports a refused token as a timeout, like an unreachable server
            raise RuntimeError(f"{e}. If the cluster uses token authentication: "
                               + _what_to_set()) from None
        raise


def token_refused(error: BaseException | None) -> bool:
    """Whether `error` (or what caused it) is Ray refusing a missing or wrong token. The GCS
    client's AuthenticationError reaches ray.init's ConnectionError only as text."""
    while error is not None:
        if type(error).__name__ == "AuthenticationError" or "InvalidAuthToken" in str(error):
            return True
        error = error.__cause__ or error.__context__
    return False


def token_help(address: str) -> str:
    """What to set, from what this process has: RAY_AUTH_MODE (unset, token, anything else)."""
    mode = os.environ.get(AUTH_MODE)
    refused = f"the cluster at {address} uses token authentication"
    if (mode or "").lower() == "token" or (mode is None and address == "auto"):
        # Ray sent the token it found, or found none (auto sends one when it finds one)
        return (f"{refused} and this process has no token, or not the cluster's: put the "
                f"cluster's token in {TOKEN_SOURCES}")
    if mode is not None:  # set, even empty: Ray then never turns token mode on by itself
        return f"{refused}, but {AUTH_MODE}={mode!r} here: " + _what_to_set()
    return (f"{refused} (`ray start --head` turns it on whenever it finds a token, such as the "
            f"~/.ray/auth_token that any earlier ray.init() leaves), and Ray sends no token to "
            f"an address given explicitly: " + _what_to_set() + "; on the head node, as the "
            "user who started it, --ray auto needs neither")


def _what_to_set() -> str:
    return f"export {AUTH_MODE}=token, and the cluster's token in {TOKEN_SOURCES}"


def _token_mode() -> bool:
    return os.environ.get(AUTH_MODE, "").lower() == "token"
