// Package configs embeds the default configuration so `go run ./cmd/bot`
// works with no flags and no files beyond the repository.
package configs

import _ "embed"

// Example is configs/example.yaml: shell chat, local driver, SQLite under ./var.
//
//go:embed example.yaml
var Example []byte

// ExampleName is how errors in the embedded config are reported.
const ExampleName = "configs/example.yaml (embedded)"
