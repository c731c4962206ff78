//go:build !race

package kong

const raceEnabled = false
