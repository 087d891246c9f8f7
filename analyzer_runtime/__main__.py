from analyzer_runtime.cli import main

main()
