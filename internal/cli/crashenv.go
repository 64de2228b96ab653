package cli

// EnvCrashAfter names the variable that makes a relabel built with
// -tags relabeltest kill itself right after a step (STEP, or STEP:N for the
// Nth time any object reaches it); the crash-safety tests use it to stop a
// migration at a precise point. The name is for the tests: a binary built
// without the tag never reads the variable (see crashhook.go).
const EnvCrashAfter = "RELABEL_TEST_CRASH_AFTER"
