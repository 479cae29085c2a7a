package dashboards

//go:generate go run ./gen -o ctwatch.json
