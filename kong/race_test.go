//go:build race

package kong

// raceEnabled lowers the swap count of TestPostConfigUnderLoad: the race
// detector makes each swap about five times slower.
const raceEnabled = true
