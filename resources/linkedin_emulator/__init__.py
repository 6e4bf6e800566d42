"""A faithful local LinkedIn emulator over real HTTP: the embedded default and the test double.

``EmulatorServer(EmulatorConfig(...)).start()`` serves OAuth (consent page, token exchange), userinfo and
``/rest/posts`` on 127.0.0.1; point the production client's auth and API base URLs at ``base_url``.
See docs/linkedin.md for what it reproduces and its fault injection.
"""

from resources.linkedin_emulator.app import create_app
from resources.linkedin_emulator.server import EmulatorServer
from resources.linkedin_emulator.state import AFTER_COMMIT, FAULT_KINDS, EmulatorConfig, EmulatorState

__all__ = ["AFTER_COMMIT", "FAULT_KINDS", "EmulatorConfig", "EmulatorServer", "EmulatorState", "create_app"]
