from stageroute_cli.main import run

run()
