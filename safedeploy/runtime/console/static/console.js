// The live console: polls the runtime's /console/api/state and draws it; approve/reject post to /console/api/decision.
"use strict";

(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const pollMs = Number(document.querySelector('meta[name="poll-interval-ms"]').content) || 1500;
  let waitingExecution = null;
  let stopped = false;

  const $ = (id) => document.getElementById(id);

  function text(tag, value, className) {
    const cell = document.createElement(tag);
    cell.textContent = value === null || value === undefined ? "" : String(value);
    if (className) cell.className = className;
    return cell;
  }

  function row(cells) {
    const tr = document.createElement("tr");
    cells.forEach((cell) => tr.appendChild(cell));
    return tr;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "";
    return value < 60 ? value.toFixed(1) + " s" : Math.floor(value / 60) + " min " + Math.round(value % 60) + " s";
  }

  function renderExecution(execution) {
    const body = $("stages").querySelector("tbody");
    body.replaceChildren();
    if (!execution) {
      $("execution-status").textContent = "none";
      $("execution-meta").textContent = "This pipeline has not run yet: `make deploy` starts it.";
      return;
    }
    $("execution-status").textContent = execution.status;
    $("execution-status").className = "badge status-" + execution.status;
    $("execution-meta").textContent =
      execution.execution_id + " · started " + execution.started_at + " · trigger: " + execution.trigger +
      (execution.error ? " · " + execution.error : "");
    execution.stages.forEach((stage) => {
      const tr = row([
        text("td", stage.name),
        text("td", stage.status, "status-" + stage.status),
        text("td", seconds(stage.duration_s)),
        text("td", stage.error || stage.summary, "message"),
      ]);
      tr.dataset.stage = stage.name;
      tr.dataset.status = stage.status;
      body.appendChild(tr);
    });
  }

  function renderApproval(execution, decision) {
    const approval = execution ? execution.approval : null;
    const running = decision && decision.running;
    $("approval-section").hidden = !approval && !decision;
    $("approval-waiting").hidden = !approval || running;
    waitingExecution = approval ? approval.execution_id : null;
    if (approval) {
      $("approval-question").textContent = approval.question;
      $("approval-summary").textContent = approval.summary;
      $("approval-expiry").textContent = "Execution " + approval.execution_id + " waits at " + approval.stage +
        " until " + approval.expires_at + ".";
    }
    const status = $("decision-status");
    status.className = "";
    if (!decision) {
      status.textContent = "";
    } else if (decision.running) {
      status.textContent = decision.outcome + " by " + decision.approver + " (\u201c" + decision.comment +
        "\u201d): carrying it out…";
    } else if (decision.exit_code === 0) {
      status.textContent = decision.outcome + " by " + decision.approver + " (\u201c" + decision.comment + "\u201d): done.";
    } else {
      status.className = "error";
      status.textContent = decision.outcome + " for " + decision.execution_id + " failed (exit " + decision.exit_code +
        "), log " + decision.log + ":\n" + decision.log_tail.join("\n");
    }
  }

  const charted = new Set();

  function chart(id, data, layout) {
    if (typeof Plotly === "undefined") return;
    const base = { margin: { t: 36, r: 10, b: 40, l: 50 }, legend: { orientation: "h" } };
    Plotly.react(id, data, Object.assign(base, layout), { displayModeBar: false, responsive: true });
    charted.add(id);
  }

  function renderTraffic(traffic, production) {
    $("production").textContent = production
      ? "Production serves v" + production.version + " on " + production.endpoint + "."
      : "Nothing in production yet.";
    const body = $("variants").querySelector("tbody");
    body.replaceChildren();
    $("traffic-charts").hidden = !traffic;
    if (!traffic) {
      return;
    }
    traffic.variants.forEach((variant) => {
      const m = variant.metrics || { total_requests: 0, total_errors: 0, p99_ms: [] };
      const p99 = m.p99_ms.length ? m.p99_ms[m.p99_ms.length - 1].toFixed(1) + " ms" : "-";
      const tr = row([
        text("td", variant.role), text("td", variant.endpoint), text("td", "v" + variant.version),
        text("td", (variant.weight * 100).toFixed(1) + " %"), text("td", m.total_requests),
        text("td", m.total_errors), text("td", p99),
      ]);
      tr.dataset.role = variant.role;
      tr.dataset.weight = String(variant.weight);
      body.appendChild(tr);
    });
    const label = (v) => "v" + v.version + " (" + v.role + ")";
    chart("chart-weights", [{
      type: "bar", x: traffic.variants.map(label), y: traffic.variants.map((v) => v.weight * 100),
      marker: { color: traffic.variants.map((v) => (v.role === "canary" ? "#2e7d32" : "#1f5fbf")) },
    }], { title: { text: "Traffic split (%)" }, yaxis: { range: [0, 100] } });
    const withMetrics = traffic.variants.filter((v) => v.metrics);
    chart("chart-requests", withMetrics.flatMap((v) => [
      { type: "scatter", mode: "lines", name: label(v) + " requests", x: v.metrics.times, y: v.metrics.requests },
      { type: "scatter", mode: "lines", name: label(v) + " 5XX", x: v.metrics.times, y: v.metrics.errors,
        line: { dash: "dot" } },
    ]), { title: { text: "Requests and 5XX errors per 2 s" } });
    chart("chart-latency", withMetrics.map((v) => (
      { type: "scatter", mode: "lines", name: label(v), x: v.metrics.latency_times, y: v.metrics.p99_ms }
    )), { title: { text: "p99 model latency (ms)" } });
  }

  function renderFigures(figures, canary, chartsError) {
    $("canary").textContent = (canary === null || canary === undefined
      ? "Synthetic canary: no SuccessPercent published yet."
      : "Synthetic canary success: " + canary.toFixed(1) + " %") + (chartsError ? " · " + chartsError : "");
    const holder = $("figures");
    Object.entries(figures || {}).forEach(([name, figure]) => {
      const id = "figure-" + name;
      if (!$(id)) {
        const div = document.createElement("div");
        div.id = id;
        div.className = "chart";
        div.dataset.figure = name;
        holder.appendChild(div);
      }
      if (typeof Plotly !== "undefined") {
        const layout = Object.assign({ height: 360 }, figure.layout || {});  // a figure's own height wins
        Plotly.react(id, figure.data || [], layout, { displayModeBar: false, responsive: true });
      }
    });
  }

  function renderLedger(ledger) {
    const body = $("ledger").querySelector("tbody");
    body.replaceChildren();
    ledger.forEach((entry) => {
      body.appendChild(row([
        text("td", (entry.time || "").slice(0, 19).replace("T", " ")),
        text("td", entry.deployment_id),
        text("td", "v" + (entry.blue_version === null || entry.blue_version === undefined ? "-" : entry.blue_version) +
          " \u2192 v" + entry.green_version),
        text("td", entry.strategy),
        text("td", entry.outcome + (entry.rehearsal ? " [rehearsal " + entry.rehearsal + "]" : ""),
          "status-" + (entry.outcome === "RolledBack" ? "Failed" : entry.outcome)),
        text("td", entry.reason, "message"),
      ]));
    });
  }

  function refused(message) {
    stopped = true;
    $("freshness").className = "error";
    $("freshness").textContent = message;
  }

  async function poll() {
    if (stopped) return;
    try {
      const reply = await fetch("/console/api/state", { credentials: "same-origin", cache: "no-store" });
      if (reply.status === 401 || reply.status === 403) {
        refused((await reply.json()).message);
        return;
      }
      if (!reply.ok) throw new Error("HTTP " + reply.status);
      const state = await reply.json();
      renderExecution(state.execution);
      renderApproval(state.execution, state.decision);
      renderTraffic(state.traffic, state.production);
      renderFigures(state.figures, state.canary_success_percent, state.charts_error);
      renderLedger(state.ledger);
      $("freshness").className = "muted";
      $("freshness").textContent = "updated " + new Date().toLocaleTimeString();
    } catch (error) {
      $("freshness").className = "error";
      $("freshness").textContent = "cannot reach the runtime (" + error.message + "); retrying…";
    }
    window.setTimeout(poll, pollMs);
  }

  async function decide(outcome) {
    const comment = $("approval-comment").value.trim();
    const status = $("decision-status");
    if (!comment) {
      status.className = "error";
      status.textContent = "A comment is required: say why (it is recorded with the decision).";
      return;
    }
    if (!waitingExecution) return;
    $("approve-button").disabled = true;
    $("reject-button").disabled = true;
    try {
      const reply = await fetch("/console/api/decision", {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-Console-CSRF": csrf },
        body: JSON.stringify({ execution_id: waitingExecution, outcome: outcome, comment: comment }),
      });
      const answer = await reply.json();
      if (!reply.ok) {
        status.className = "error";
        status.textContent = answer.message;
      } else {
        $("approval-comment").value = "";
      }
    } catch (error) {
      status.className = "error";
      status.textContent = "the decision did not reach the runtime: " + error.message;
    } finally {
      $("approve-button").disabled = false;
      $("reject-button").disabled = false;
    }
  }

  $("approve-button").addEventListener("click", () => decide("Approved"));
  $("reject-button").addEventListener("click", () => decide("Rejected"));
  poll();
})();
