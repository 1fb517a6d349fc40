-- wrk script: as post_body.lua, and counts the answers by status and by `model_version`, so a run
-- across hot reloads shows which models answered, with the distinct confidences each version gave
-- (one image posted: 1 each when every answer came whole from one model). Prints RESULT, VERSIONS
-- (version=answers/distinct confidences) and STATUSES lines at the end.
-- the body, method and headers, and write_result, from post_body.lua beside this script
dofile(string.match(debug.getinfo(1, "S").source, "^@(.*/)") .. "post_body.lua")

local threads = {}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  versions = {}
  statuses = {}
  confidences = {}
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local v = string.match(body, '"model_version":"(%x+)"') or "none"
  versions[v] = (versions[v] or 0) + 1
  local c = string.match(body, '"confidence":([%d%.eE%-]+)')
  if c then
    confidences[v .. " " .. c] = true  -- flat: wrk copies a thread's tables one level deep only
  end
end

function done(summary, latency, requests)
  write_result(summary, latency)
  local seen, codes, distinct = {}, {}, {}
  for _, thread in ipairs(threads) do
    for v, n in pairs(thread:get("versions")) do seen[v] = (seen[v] or 0) + n end
    for key, _ in pairs(thread:get("confidences")) do
      local v = string.match(key, "^(%S+)")
      distinct[v] = distinct[v] or {}
      distinct[v][key] = true
    end
    for s, n in pairs(thread:get("statuses")) do codes[s] = (codes[s] or 0) + n end
  end
  local parts = {}
  for v, n in pairs(seen) do
    local k = 0
    for _ in pairs(distinct[v] or {}) do k = k + 1 end
    table.insert(parts, v .. "=" .. n .. "/" .. k)
  end
  io.write("VERSIONS " .. table.concat(parts, " ") .. "\n")
  parts = {}
  for s, n in pairs(codes) do table.insert(parts, s .. "=" .. n) end
  io.write("STATUSES " .. table.concat(parts, " ") .. "\n")
end
