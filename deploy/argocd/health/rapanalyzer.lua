-- Argo CD health check for rapanalyzer.io AnalysisRun and ScrapeJob (one script for
-- both: they share the status shape; Argo CD's Lua engine: `obj`
-- is the resource, return `hs` with `status` and `message`). Reads the status the
-- operator writes (analyzer_runtime/contract/status.py): phase, progress, eta, conditions.
--   no status yet             -> Progressing "waiting for the operator"
--   Failed                    -> Degraded (the Failed condition's message)
--   condition Valid=False     -> Degraded (the Valid condition's message)
--   Suspended / spec.suspend  -> Suspended
--   Succeeded                 -> Healthy (mentions CompletedWithErrors when True)
--   Pending / Running         -> Progressing (progress and ETA)
-- deploy/argocd/gen_argocd_cm.py registers it under both kinds' argocd-cm keys;
-- tests/gitops checks it with Argo CD's own binary.
local hs = {}

local function condition(status, ctype)
  if status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == ctype then
      return c
    end
  end
  return nil
end

local function text(value)
  if value == nil or value == "" then
    return nil
  end
  return tostring(value)
end

local status = obj.status
if status == nil or text(status.phase) == nil then
  hs.status = "Progressing"
  hs.message = "waiting for the operator"
  return hs
end

local phase = status.phase
local progress = text(status.progress)
local valid = condition(status, "Valid")

if phase == "Failed" then
  local failed = condition(status, "Failed")
  hs.status = "Degraded"
  hs.message = (failed and text(failed.message))
    or (valid and valid.status == "False" and text(valid.message))
    or (obj.kind == "ScrapeJob" and "the job failed" or "the run failed")
  return hs
end

if valid ~= nil and valid.status == "False" then
  hs.status = "Degraded"
  hs.message = text(valid.message) or text(valid.reason) or "the spec is invalid"
  return hs
end

if phase == "Succeeded" then
  local summary = condition(status, "Succeeded")
  local msg = "Succeeded"
  if progress then
    msg = msg .. ": " .. progress
  end
  if summary and text(summary.message) then
    msg = msg .. "; " .. summary.message
  end
  local errors = condition(status, "CompletedWithErrors")
  if errors ~= nil and errors.status == "True" then
    msg = msg .. "; CompletedWithErrors: " .. (text(errors.message) or "some items failed")
  end
  hs.status = "Healthy"
  hs.message = msg
  return hs
end

local spec = obj.spec or {}
if phase == "Suspended" or spec.suspend == true then
  local suspended = condition(status, "Suspended")
  local msg = "Suspended"
  if progress then
    msg = msg .. " at " .. progress
  end
  if suspended and suspended.status == "True" and text(suspended.message) then
    msg = msg .. "; " .. suspended.message
  end
  hs.status = "Suspended"
  hs.message = msg
  return hs
end

-- Pending, Running (and any phase a newer operator may add): still converging.
local msg = phase
if progress then
  msg = msg .. ": " .. progress
end
local eta = text(status.eta)
if eta then
  msg = msg .. ", ETA " .. eta
end
if phase == "Pending" then
  local running = condition(status, "Running")
  if running and text(running.message) then
    msg = msg .. " (" .. running.message .. ")"
  end
end
local pods = condition(status, "PodsReady")
if pods ~= nil and pods.status == "False" then
  msg = msg .. "; pods: " .. (text(pods.reason) or "NotReady")
  if text(pods.message) then
    msg = msg .. ": " .. pods.message
  end
end
hs.status = "Progressing"
hs.message = msg
return hs
