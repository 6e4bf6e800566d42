"""``kiln run`` starts the LinkedIn emulator when no LinkedIn credentials are set, and says so."""

from __future__ import annotations

from api.devserver import linkedin_emulator_plan


def test_without_credentials_the_emulator_runs_and_kiln_points_at_it():
    command, env, banner = linkedin_emulator_plan({}, "http://127.0.0.1:8000")
    assert command[1:4] == ["-m", "resources.linkedin_emulator", "--port"]
    assert env["KILN_LINKEDIN_AUTH_BASE_URL"] == env["KILN_LINKEDIN_API_BASE_URL"] == "http://127.0.0.1:8765"
    assert env["KILN_LINKEDIN_REDIRECT_URI"] == "http://127.0.0.1:8000/v1/linkedin/callback"
    assert "EMULATOR (not LinkedIn)" in banner and "KILN_LINKEDIN_CLIENT_ID" in banner


def test_with_credentials_kiln_talks_to_linkedin():
    assert linkedin_emulator_plan({"KILN_LINKEDIN_CLIENT_ID": "real-app"}, "http://127.0.0.1:8000") is None
