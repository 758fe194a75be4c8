package config

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
)

// LoadDatabasePath reads only where the database is from the file at path:
// bot.database, else bot.data_dir + "/shipbot.db" (data_dir defaults to
// ./var). Audit verify and export need nothing else, so a ${VAR} elsewhere
// (a listen address, a chat id, a token) that the auditor's environment does
// not set does not stop them; a ${VAR} in those two keys must be set.
func LoadDatabasePath(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return DatabasePath(data, path, os.LookupEnv)
}

// DatabasePath is LoadDatabasePath on data, named name in errors.
func DatabasePath(data []byte, name string, lookupEnv func(string) (string, bool)) (string, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	dataDir, database := "./var", ""
	if len(doc.Content) == 1 && doc.Content[0].Kind == yaml.MappingNode {
		root := doc.Content[0]
		for i := 0; i+1 < len(root.Content); i += 2 {
			if root.Content[i].Value != "bot" || root.Content[i+1].Kind != yaml.MappingNode {
				continue
			}
			bot := root.Content[i+1]
			for k := 0; k+1 < len(bot.Content); k += 2 {
				key, v := bot.Content[k].Value, bot.Content[k+1]
				if key != "data_dir" && key != "database" {
					continue
				}
				if v.Kind != yaml.ScalarNode {
					return "", fmt.Errorf("%s:%d: bot.%s: want a path", name, v.Line, key)
				}
				s, _, err := expand(v.Value, lookupEnv)
				if err != nil {
					return "", fmt.Errorf("%s:%d: bot.%s: %w", name, v.Line, key, err)
				}
				if key == "data_dir" {
					dataDir = s
				} else {
					database = s
				}
			}
		}
	}
	if database == "" {
		if strings.TrimSpace(dataDir) == "" {
			return "", fmt.Errorf("%s: bot.data_dir is empty and bot.database is not set", name)
		}
		database = strings.TrimRight(dataDir, "/") + "/shipbot.db"
	}
	return database, nil
}
