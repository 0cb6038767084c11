// Package weirpb holds the generated types and Connect/gRPC stubs of the
// native Weir API (weir.proto).
package weirpb

//go:generate protoc --go_out=. --go_opt=paths=source_relative --connect-go_out=. --connect-go_opt=paths=source_relative -I . weir.proto
//go:generate protoc --go_out=. --go_opt=paths=source_relative --connect-go_out=. --connect-go_opt=paths=source_relative -I . -I /usr/include events.proto
