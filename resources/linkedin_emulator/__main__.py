from resources.linkedin_emulator.server import main

main()
