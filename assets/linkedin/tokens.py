"""The daily token upkeep behind ``linkedin_token_refresh_job`` (no Dagster here).

Access tokens live 60 days. For each connected account whose access token expires within
``KILN_LINKEDIN_REFRESH_WINDOW_DAYS`` (7): with a refresh token, refresh it (a transient error is retried on the
next run and never disconnects; a refused refresh token means ``needs_reauth``); without one, the account becomes
``needs_reauth`` (status, audit; ``reconnect_route`` in the API) so a person reconnects before posts start failing.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import structlog

from assets.linkedin.posting import PostingEnv, refresh_account
from warehouse import linkedin as accounts

log = structlog.get_logger("kiln.linkedin.tokens")


def refresh_expiring_tokens(env: PostingEnv) -> dict[str, int]:
    now = env.now()
    with env.system() as s:
        due = accounts.accounts_expiring(s, now + timedelta(days=env.settings.linkedin_refresh_window_days))
    outcomes: Counter[str] = Counter()
    for workspace_id, account_id in due:
        with env.tenant(workspace_id) as s:
            account = accounts.account_of(s, workspace_id, account_id)
            has_refresh = account.refresh_token_ciphertext is not None
        result = refresh_account(env, workspace_id, account_id) if has_refresh else "reauth"
        if result == "reauth":
            with env.tenant(workspace_id) as s:
                if accounts.mark_needs_reauth(s, workspace_id, account_id):
                    accounts.audit_event(s, workspace_id, "linkedin.needs_reauth", "linkedin_account", account_id,
                                         reason="refresh_refused" if has_refresh else "access_token_expiring")
        outcomes[{"ok": "refreshed", "reauth": "needs_reauth", "transient": "retry_tomorrow"}[result]] += 1
    log.info("linkedin_token_upkeep", **outcomes)
    return dict(outcomes)
