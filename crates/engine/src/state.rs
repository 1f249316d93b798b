//! A run's state as a fold over its journal. Nothing about a run lives only in memory: the
//! worker that resumes a run rebuilds exactly this from the events, so a crash at any
//! instant loses nothing and a recorded result is never re-requested.

use std::collections::HashMap;

use coworker_core::ApprovalId;
use coworker_core::domain::Tier;
use coworker_models::{Message, ModelResponse, ToolCall};
use coworker_store::RunEvent;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Journal event kinds (design §2), as stored in `run_events.kind`.
pub mod kind {
    /// The run began: task, coworker, brief.
    pub const STARTED: &str = "started";
    /// Working memory was assembled: what went into the context.
    pub const CONTEXT_BUILT: &str = "context_built";
    /// A model call is about to be made.
    pub const MODEL_REQUESTED: &str = "model_requested";
    /// A model call's full response, usage and cost.
    pub const MODEL_RESPONDED: &str = "model_responded";
    /// A model call failed after retries and fallback.
    pub const MODEL_FAILED: &str = "model_failed";
    /// The model proposed a plan.
    pub const PLAN_PROPOSED: &str = "plan_proposed";
    /// A human approved or rejected the plan.
    pub const PLAN_DECIDED: &str = "plan_decided";
    /// The model asked for a tool call; the gate's tier and rule.
    pub const TOOL_REQUESTED: &str = "tool_requested";
    /// A human decision was requested.
    pub const APPROVAL_REQUESTED: &str = "approval_requested";
    /// A human decided.
    pub const APPROVAL_DECIDED: &str = "approval_decided";
    /// An approval reached its deadline (escalated first, then expired).
    pub const APPROVAL_EXPIRED: &str = "approval_expired";
    /// A tool call is about to run (intent).
    pub const TOOL_STARTED: &str = "tool_started";
    /// A tool call's result (or why it did not run).
    pub const TOOL_FINISHED: &str = "tool_finished";
    /// The coworker asked the delegator a question.
    pub const QUESTION_ASKED: &str = "question_asked";
    /// The delegator answered.
    pub const ANSWER_RECEIVED: &str = "answer_received";
    /// A person wrote in the task's thread.
    pub const HUMAN_MESSAGE: &str = "human_message";
    /// Spending neared the budget: the model is told to wrap up.
    pub const BUDGET_WARNING: &str = "budget_warning";
    /// A limit or budget was hit.
    pub const BUDGET_EXCEEDED: &str = "budget_exceeded";
    /// The task cannot proceed without a human.
    pub const BLOCKED: &str = "blocked";
    /// The task finished with a result.
    pub const COMPLETED: &str = "completed";
    /// The task failed.
    pub const FAILED: &str = "failed";
    /// A human cancelled the task.
    pub const CANCELLED: &str = "cancelled";
    /// Deliverables were re-read and checked before delivery: passed, or the problems and
    /// whether the model gets another attempt.
    pub const VALIDATION_FINISHED: &str = "validation_finished";
    /// A `tasks.delegate` call created a subtask (issue 15).
    pub const SUBTASK_SPAWNED: &str = "subtask_spawned";
    /// A subtask this run delegated reached a terminal status.
    pub const SUBTASK_FINISHED: &str = "subtask_finished";
    /// A `tasks.delegate` call was refused by a limit (depth, cycle, fan-out, in flight,
    /// budget): the limit and the reason.
    pub const DELEGATION_REFUSED: &str = "delegation_refused";
}

/// A subtask this run delegated, as its journal tells it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SubtaskRecord {
    /// The child task's id.
    pub task_id: String,
    /// The delegating call's key.
    pub call_id: String,
    /// What `to` said.
    pub to: String,
    /// Identity of "the same subtask" for repeated-failure counting.
    pub failure_key: String,
    /// Budget carved out for it, micro-dollars.
    pub budget_micros_usd: Option<i64>,
    /// `subtask_finished` payload, once journaled.
    pub finished: Option<Value>,
}

/// One validation of the deliverables, as journaled.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Validation {
    /// The model turn whose final answer was being delivered.
    pub turn: u32,
    /// Whether every check passed.
    pub passed: bool,
    /// Whether the model is given the problems for another attempt.
    pub retry: bool,
    /// The problems found.
    pub problems: Vec<String>,
    /// The files checked: `{path, version}` each (delivered with the result when passed).
    pub files: Vec<Value>,
}

/// `started` payload.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Started {
    /// The brief.
    pub brief: String,
    /// The coworker's handle.
    pub coworker: String,
}

/// One model turn as journaled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Turn {
    /// Turn number, from 1.
    pub turn: u32,
    /// The response.
    pub response: ModelResponse,
}

/// Everything known about one tool call of the model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CallRecord {
    /// The call as the model made it.
    pub call: Option<ToolCall>,
    /// Namespaced tool name.
    pub tool: String,
    /// Gate tier, once requested.
    pub tier: Option<Tier>,
    /// Whether the tool is idempotent (from `tool_started`).
    pub idempotent: bool,
    /// The approval raised for it, if any, and its kind.
    pub approval: Option<(ApprovalId, String)>,
    /// The decision on that approval (`approve`, `reject`, `retry`, `skip`, `mark_done`).
    pub decision: Option<(String, Option<String>)>,
    /// Whether `tool_started` was journaled.
    pub started: bool,
    /// How many times it was started.
    pub starts: u32,
    /// The result that answers it: (content, is_error).
    pub result: Option<(String, bool)>,
    /// The question asked, for `tasks.ask`.
    pub question: Option<String>,
    /// Whether the approval was escalated once already.
    pub escalated: bool,
}

/// How the run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Terminal {
    /// Done, with the result text.
    Completed(String),
    /// Failed, with the reason.
    Failed(String),
    /// Cancelled by a human.
    Cancelled,
}

/// The folded state of a run.
#[derive(Debug, Clone, Default)]
pub struct RunState {
    /// `started` payload, once journaled.
    pub started: Option<Started>,
    /// Whether context was built.
    pub context_built: bool,
    /// The memory block journaled in `context_built` (fenced facts and past tasks).
    pub memory_context: Option<String>,
    /// Model turns, in order.
    pub turns: Vec<Turn>,
    /// Tool calls by id.
    pub calls: HashMap<String, CallRecord>,
    /// Notes for the model (human messages, wrap-up instructions), each placed after the
    /// given number of turns.
    pub notes: Vec<(usize, String)>,
    /// `model_requested` events so far.
    pub model_calls: u32,
    /// Consecutive model failures at the end of the journal.
    pub model_failures: u32,
    /// Tokens used (input + output).
    pub tokens: u64,
    /// Cost so far, micro-dollars.
    pub cost_micros_usd: i64,
    /// Failures per identical call (tool + arguments).
    pub failures: HashMap<String, u32>,
    /// Whether the wrap-up instruction was given.
    pub wrap_up_sent: bool,
    /// Budget extensions granted by humans.
    pub budget_extensions: u32,
    /// Pending budget approval, if any.
    pub budget_approval: Option<(ApprovalId, Option<String>)>,
    /// The run's end, once journaled.
    pub terminal: Option<Terminal>,
    /// Why the task is blocked, if it is.
    pub blocked: Option<String>,
    /// Highest seq folded.
    pub last_seq: i64,
    /// Validations of the deliverables, in order.
    pub validations: Vec<Validation>,
    /// Subtasks delegated by this run, in the order they were spawned (issue 15).
    pub subtasks: Vec<SubtaskRecord>,
    /// Failed subtasks per identity (`to` + brief).
    pub subtask_failures: HashMap<String, u32>,
    /// Pending approval to let the task tree spend past its threshold, if any.
    pub tree_budget_approval: Option<ApprovalId>,
    /// What the run has seen, trusted and untrusted (issue 19), folded from the same events.
    pub provenance: coworker_core::provenance::ProvenanceIndex,
}

/// What the run should do next.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Journal `started` and build the context.
    Start,
    /// Ask the model for the next turn.
    ModelTurn,
    /// Resolve this tool call (gate, wait, execute or recover).
    Call(String),
    /// The last turn had no tool calls: deliver its text.
    Complete(String),
    /// Nothing: the run has ended.
    Ended,
}

/// The engine's key for a tool call: the model's id qualified by its turn, because some
/// models and servers reuse ids (`call_0`) across turns.
pub fn call_key(turn: u32, model_call_id: &str) -> String {
    format!("t{turn}:{model_call_id}")
}

/// The identity of a call for repeated-failure counting: tool plus canonical arguments.
pub fn failure_key(tool: &str, arguments: &Value) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{tool}\u{0}{arguments}").as_bytes());
    hex::encode(&digest[..16])
}

impl RunState {
    /// Folds a journal (events in seq order).
    pub fn fold(events: &[RunEvent]) -> RunState {
        let mut state = RunState::default();
        for event in events {
            state.apply(event);
        }
        state
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &RunEvent) {
        self.last_seq = event.seq;
        let p = &event.payload;
        let call_id = || p.get("call_id").and_then(Value::as_str).unwrap_or_default().to_owned();
        let text = |key: &str| p.get(key).and_then(Value::as_str).unwrap_or_default().to_owned();
        match event.kind.as_str() {
            kind::STARTED => self.started = serde_json::from_value(p.clone()).ok(),
            kind::CONTEXT_BUILT => {
                self.context_built = true;
                self.memory_context = p.get("memory").and_then(Value::as_str).map(str::to_owned);
            }
            kind::MODEL_REQUESTED => self.model_calls += 1,
            kind::MODEL_RESPONDED => {
                if let Ok(turn) = serde_json::from_value::<Turn>(p.clone()) {
                    self.model_failures = 0;
                    self.tokens += turn.response.usage.input_tokens + turn.response.usage.output_tokens;
                    self.cost_micros_usd += turn.response.cost_micros_usd;
                    for call in &turn.response.tool_calls {
                        let record = self.calls.entry(call_key(turn.turn, &call.id)).or_default();
                        record.call = Some(call.clone());
                        record.tool = crate::tools::from_wire_name(&call.name);
                    }
                    self.turns.push(turn);
                }
            }
            kind::MODEL_FAILED => self.model_failures += 1,
            kind::TOOL_REQUESTED => {
                let record = self.calls.entry(call_id()).or_default();
                record.tier = p.get("tier").and_then(|t| serde_json::from_value(t.clone()).ok());
            }
            kind::PLAN_PROPOSED => {}
            kind::APPROVAL_REQUESTED => {
                let id = p
                    .get("approval_id")
                    .and_then(|v| serde_json::from_value::<ApprovalId>(v.clone()).ok());
                let approval_kind = text("kind");
                if let Some(id) = id {
                    if approval_kind == "budget" {
                        self.budget_approval = Some((id, None));
                    } else if approval_kind == crate::delegation::TREE_BUDGET_APPROVAL {
                        self.tree_budget_approval = Some(id);
                    } else {
                        let record = self.calls.entry(call_id()).or_default();
                        record.approval = Some((id, approval_kind));
                        record.decision = None;
                        record.escalated = false;
                    }
                }
            }
            kind::APPROVAL_DECIDED | kind::PLAN_DECIDED => {
                let decision = text("decision");
                let note = p.get("note").and_then(Value::as_str).map(str::to_owned);
                if text("kind") == "budget" {
                    if decision == "approve" {
                        self.budget_extensions += 1;
                    }
                    self.budget_approval = None;
                } else if text("kind") == crate::delegation::TREE_BUDGET_APPROVAL {
                    self.tree_budget_approval = None;
                } else {
                    let record = self.calls.entry(call_id()).or_default();
                    record.decision = Some((decision, note));
                }
            }
            kind::APPROVAL_EXPIRED => {
                if p.get("escalated").and_then(Value::as_bool) == Some(true)
                    && let Some(record) = self.calls.get_mut(&call_id())
                {
                    record.escalated = true;
                }
            }
            kind::TOOL_STARTED => {
                let record = self.calls.entry(call_id()).or_default();
                record.started = true;
                record.starts += 1;
                record.idempotent = p.get("idempotent").and_then(Value::as_bool).unwrap_or(false);
            }
            kind::TOOL_FINISHED => {
                let is_error = p.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                let content = text("content");
                let id = call_id();
                if is_error
                    && p.get("executed").and_then(Value::as_bool) == Some(true)
                    && let Some(key) = p.get("failure_key").and_then(Value::as_str)
                {
                    *self.failures.entry(key.to_owned()).or_default() += 1;
                }
                let record = self.calls.entry(id).or_default();
                record.result = Some((content, is_error));
                record.started = false;
            }
            kind::QUESTION_ASKED => {
                let record = self.calls.entry(call_id()).or_default();
                record.question = Some(text("question"));
            }
            kind::ANSWER_RECEIVED => {
                let record = self.calls.entry(call_id()).or_default();
                record.result = Some((format!("The delegator answered: {}", text("answer")), false));
            }
            kind::HUMAN_MESSAGE => self.notes.push((
                self.turns.len(),
                format!("Message from {}: {}", text("from"), text("text")),
            )),
            kind::BUDGET_WARNING => {
                self.wrap_up_sent = true;
                self.notes.push((self.turns.len(), text("instruction")));
            }
            kind::VALIDATION_FINISHED => {
                let validation = Validation {
                    turn: p.get("turn").and_then(Value::as_u64).unwrap_or(0) as u32,
                    passed: p.get("passed").and_then(Value::as_bool).unwrap_or(false),
                    retry: p.get("retry").and_then(Value::as_bool).unwrap_or(false),
                    problems: p
                        .get("problems")
                        .and_then(Value::as_array)
                        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
                        .unwrap_or_default(),
                    files: p
                        .get("files")
                        .and_then(Value::as_array)
                        .map(|files| {
                            files
                                .iter()
                                .map(|f| serde_json::json!({"path": f.get("path"), "version": f.get("version")}))
                                .collect()
                        })
                        .unwrap_or_default(),
                };
                // The second model call that checked the prose is paid for like any other.
                self.cost_micros_usd += p.get("cost_micros_usd").and_then(Value::as_i64).unwrap_or(0);
                self.tokens += p.get("tokens").and_then(Value::as_u64).unwrap_or(0);
                if !validation.passed
                    && validation.retry
                    && let Some(note) = p.get("note").and_then(Value::as_str)
                {
                    // A check with its own instruction (a subtask's result schema).
                    self.notes.push((self.turns.len(), note.to_owned()));
                } else if !validation.passed && validation.retry {
                    self.notes.push((
                        self.turns.len(),
                        format!(
                            "[validation] Your deliverables were re-opened and checked before delivery, and did not pass:\n{}\nFix these problems (call the tools again to produce corrected files), then give your final answer.",
                            validation.problems.iter().map(|p| format!("- {p}")).collect::<Vec<_>>().join("\n")
                        ),
                    ));
                }
                self.validations.push(validation);
            }
            kind::SUBTASK_SPAWNED => self.subtasks.push(SubtaskRecord {
                task_id: text("subtask_id"),
                call_id: call_id(),
                to: text("to"),
                failure_key: text("failure_key"),
                budget_micros_usd: p.get("budget_micros_usd").and_then(Value::as_i64),
                finished: None,
            }),
            kind::SUBTASK_FINISHED => {
                let id = text("subtask_id");
                if let Some(record) = self.subtasks.iter_mut().find(|r| r.task_id == id) {
                    if text("status") == "failed" {
                        *self.subtask_failures.entry(record.failure_key.clone()).or_default() += 1;
                    }
                    record.finished = Some(p.clone());
                }
            }
            kind::BLOCKED => self.blocked = Some(text("reason")),
            kind::COMPLETED => self.terminal = Some(Terminal::Completed(text("result"))),
            kind::FAILED => self.terminal = Some(Terminal::Failed(text("error"))),
            kind::CANCELLED => self.terminal = Some(Terminal::Cancelled),
            _ => {}
        }
        crate::provenance::observe(self, event);
        if event.kind != kind::BLOCKED && event.kind != kind::APPROVAL_EXPIRED && self.blocked.is_some() {
            // Any progress after a block (a late decision, a human message) unblocks.
            if matches!(
                event.kind.as_str(),
                kind::APPROVAL_DECIDED | kind::HUMAN_MESSAGE | kind::ANSWER_RECEIVED
            ) {
                self.blocked = None;
            }
        }
    }

    /// The validation of turn `turn`'s final answer, if it was validated.
    pub fn validation_of(&self, turn: u32) -> Option<&Validation> {
        self.validations.iter().rev().find(|v| v.turn == turn)
    }

    /// Successful tool calls, in the order they were made: (tool, arguments).
    pub fn successful_calls(&self) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        for turn in &self.turns {
            for call in &turn.response.tool_calls {
                if let Some(record) = self.calls.get(&call_key(turn.turn, &call.id))
                    && matches!(record.result, Some((_, false)))
                    && call.malformed.is_none()
                {
                    out.push((record.tool.clone(), call.arguments.clone()));
                }
            }
        }
        out
    }

    /// The question the coworker is waiting on (`tasks.ask` asked, not yet answered): its
    /// call key and text.
    pub fn open_question(&self) -> Option<(&str, &str)> {
        self.calls
            .iter()
            .filter(|(_, r)| r.result.is_none())
            .find_map(|(key, r)| r.question.as_deref().map(|q| (key.as_str(), q)))
    }

    /// What to do next.
    pub fn next(&self) -> Next {
        if self.terminal.is_some() {
            return Next::Ended;
        }
        if self.started.is_none() || !self.context_built {
            return Next::Start;
        }
        let Some(last) = self.turns.last() else {
            return Next::ModelTurn;
        };
        for call in &last.response.tool_calls {
            let key = call_key(last.turn, &call.id);
            let resolved = self.calls.get(&key).is_some_and(|r| r.result.is_some());
            if !resolved {
                return Next::Call(key);
            }
        }
        if last.response.tool_calls.is_empty() {
            // A final answer whose deliverables failed validation goes back to the model.
            if self
                .validations
                .last()
                .is_some_and(|v| v.turn == last.turn && !v.passed && v.retry)
            {
                return Next::ModelTurn;
            }
            return Next::Complete(last.response.text.clone());
        }
        Next::ModelTurn
    }

    /// The conversation to send on the next model turn: the brief, then each turn with its
    /// tool results, with notes placed where they were journaled.
    pub fn messages(&self, brief_message: String) -> Vec<Message> {
        let mut messages = vec![Message::user(brief_message)];
        let push_notes = |messages: &mut Vec<Message>, after: usize| {
            for (_, note) in self.notes.iter().filter(|(at, _)| *at == after) {
                messages.push(Message::user(note.clone()));
            }
        };
        push_notes(&mut messages, 0);
        for (index, turn) in self.turns.iter().enumerate() {
            messages.push(Message::Assistant {
                text: turn.response.text.clone(),
                tool_calls: turn.response.tool_calls.clone(),
            });
            for call in &turn.response.tool_calls {
                let (content, is_error) = self
                    .calls
                    .get(&call_key(turn.turn, &call.id))
                    .and_then(|r| r.result.clone())
                    .unwrap_or_else(|| ("(no result)".into(), true));
                messages.push(Message::ToolResult {
                    call_id: call.id.clone(),
                    content,
                    is_error,
                });
            }
            push_notes(&mut messages, index + 1);
        }
        merge_consecutive_user_messages(messages)
    }
}

/// Providers want user and tool-result messages to alternate sensibly with assistant turns;
/// adjacent user notes are merged into one message.
fn merge_consecutive_user_messages(messages: Vec<Message>) -> Vec<Message> {
    let mut out: Vec<Message> = Vec::with_capacity(messages.len());
    for message in messages {
        match (out.last_mut(), message) {
            (Some(Message::User { text: previous }), Message::User { text }) => {
                previous.push_str("\n\n");
                previous.push_str(&text);
            }
            (_, message) => out.push(message),
        }
    }
    out
}
