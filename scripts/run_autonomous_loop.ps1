# Run an unattended paper-trading session on Windows, restarted if it ever dies.
# A thin wrapper: every bit of logic (restart with the remaining time, crash-only resume,
# reports) lives in main.py --supervise, where it is tested.
#
#   powershell -ExecutionPolicy Bypass -File scripts\run_autonomous_loop.ps1 --duration 600
#
# Extra arguments are passed to main.py unchanged (see README.md for the options).
param([Parameter(ValueFromRemainingArguments = $true)][string[]]$Rest)

$ErrorActionPreference = "Stop"
$root = Split-Path -Parent $PSScriptRoot
$python = if ($env:PYTHON) { $env:PYTHON } else { "python" }

& $python (Join-Path $root "main.py") --headless --supervise @Rest
exit $LASTEXITCODE
