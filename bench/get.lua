-- wrk script: GET the URL's own path (one user's /getAllUserBuys/<userid>) and report.
local dir = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"
dofile(dir .. "report.lua")
