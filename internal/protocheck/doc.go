// Package protocheck finds fields set in a config proto that wasmesh does not
// implement, so compilers can reject them by name instead of ignoring them.
package protocheck
