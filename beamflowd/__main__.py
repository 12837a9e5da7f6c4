from beamflowd.main import main

main()
