// The pod sandbox pause process (see main.go). Not product code.
module rap-analyzer/tools/pause

go 1.26.0
