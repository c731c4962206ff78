// Package bootstrap reads Envoy's v3 Bootstrap from YAML or JSON the way
// Envoy does: protojson with every supported extension type registered,
// udpa.type.v1.TypedStruct and xds.type.v3.TypedStruct unwrapped into the
// real type, --config-yaml merged over the file with proto merge semantics,
// then the types' own validation and wasmesh's check for fields it does not
// implement. Every problem names its field path; Load reports all of them at
// once (what `--mode validate` prints).
package bootstrap
