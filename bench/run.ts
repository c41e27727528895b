/**
 * `npm run bench`: the fan-out benchmark of DESIGN.md §7. It needs the gateway, which lands with
 * the fan-out issue; until then it says so and exits non-zero, rather than print numbers that
 * measure nothing.
 */
process.stderr.write('tickmux bench: the fan-out benchmark is not built yet (it lands with the gateway)\n');
process.exitCode = 1;
