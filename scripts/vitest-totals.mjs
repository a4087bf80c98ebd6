// Prints "N passed, N failed" from one or more vitest JSON reports (summed: the whole suite, then the Node matrix's
// unit runs). Exits 1 when anything failed or a report is missing (a missing report counts as one failure).
import { readFileSync } from "node:fs";

const files = process.argv.length > 2 ? process.argv.slice(2) : [".vitest-results.json"];
let passed = 0;
let failed = 0;
let skipped = 0;
for (const file of files) {
  let report;
  try {
    report = JSON.parse(readFileSync(file, "utf8"));
  } catch (error) {
    console.error(`no vitest JSON report at ${file}: ${error.message}`);
    failed++;
    continue;
  }
  passed += report.numPassedTests ?? 0;
  // A test file that fails to load counts as a failure even though it has no test cases.
  const brokenSuites = (report.testResults ?? []).filter(
    (r) => r.status === "failed" && (r.assertionResults ?? []).length === 0,
  ).length;
  failed += (report.numFailedTests ?? 0) + brokenSuites;
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}`);
process.exit(failed > 0 || passed === 0 ? 1 : 0);
