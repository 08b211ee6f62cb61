-- wrk script: GET the URL's own path (one user's /getAllUserBuys/<userid>) and report.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")

-- BENCH_TOKEN: a bearer token allowed to read any user's purchases.
local token = os.getenv("BENCH_TOKEN")
if token then wrk.headers["Authorization"] = "Bearer " .. token end
