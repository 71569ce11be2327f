"""Request and response schemas: what the API accepts, and exactly which fields go out.

Responses are built only from these models, so a field that is not listed here (the end
model's draft, masked cloud text, scores) cannot reach a customer by accident.
Requests follow OpenAI's chat-completions shape; unknown fields are ignored, as OpenAI SDKs
send new ones over time. `conversation_id` is our one extension (the SDK's `extra_body`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr

# Static bounds; the configured, tighter limits are checked in the route (and also give 422).
MAX_CHARS = 65_536
MAX_MESSAGES = 1_000


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["text"] = "text"
    text: StrictStr = Field(max_length=MAX_CHARS)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "user", "assistant"]
    content: Annotated[StrictStr, Field(max_length=MAX_CHARS)] | Annotated[
        list[ContentPart], Field(max_length=100)]

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="ignore")
    include_usage: StrictBool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: StrictStr = Field(default="", max_length=200)
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    stream: StrictBool = False
    stream_options: StreamOptions | None = None
    max_tokens: StrictInt | None = Field(default=None, ge=1)
    max_completion_tokens: StrictInt | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    conversation_id: StrictStr | None = Field(default=None, max_length=64)


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class Choice(BaseModel):
    index: int = 0
    message: AssistantMessage
    finish_reason: str


class TokenUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: TokenUsage
    conversation_id: str


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int = 0
    delta: ChunkDelta
    finish_reason: str | None = None


class ChatChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChunkChoice]
    usage: TokenUsage | None = None
    conversation_id: str


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "endcloud"


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    models: list[str]
    cloud: str  # the breaker's state: closed | open | half_open | unavailable


class NewCustomer(BaseModel):
    customer_id: str
    token: str  # shown once; the store keeps only its hash


class FeedbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reply_id: StrictStr = Field(min_length=1, max_length=64)
    thumb: Literal["up", "down"] | None = None
    rating: StrictInt | None = Field(default=None, ge=1, le=5)
    comment: StrictStr | None = Field(default=None, max_length=2000)


class Stored(BaseModel):
    id: int
    status: Literal["stored"] = "stored"


class HistoryTurn(BaseModel):
    reply_id: str
    query: str
    reply: str
    created_at: str


class ConversationHistory(BaseModel):
    id: str
    turns: list[HistoryTurn]


class ConversationSummary(BaseModel):
    id: str
    created_at: str


class ConversationList(BaseModel):
    data: list[ConversationSummary]


class ExchangeRow(BaseModel):
    """One exchange in the staff console (staff see scores and who answered)."""

    id: str
    conversation_id: str
    model: str
    query: str
    reply: str
    answered_by: str
    answered_from: str | None = None  # model | memory (an approved answer) | quote (the shop's text)
    knowledge_json: str | None = None  # the chunk ids and memory entry the turn was given
    escalation: str | None
    cloud_status: str | None
    match_score: float | None
    confidence: float | None
    grounded: float | None = None  # share of the end draft's checkable facts its prompt supports
    nonanswer: str | None = None  # the end draft was an echo | restates | filler | empty
    latency_ms: float
    cost: float
    created_at: str
    ups: int
    downs: int
    rating: float | None
    verdict: str | None
    correction: str | None


class ExchangeList(BaseModel):
    data: list[ExchangeRow]


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    exchange_id: StrictStr = Field(min_length=1, max_length=64)
    rating: StrictInt | None = Field(default=None, ge=1, le=5)
    verdict: Literal["approve", "reject"] | None = None
    corrected_reply: StrictStr | None = Field(default=None, max_length=8000)
    reviewer: StrictStr = Field(default="", max_length=100)


class ReportRound(BaseModel):
    """One evolve round as `endcloud evolve report` tabulates it (evolve_rounds)."""

    id: int
    status: str
    started_at: str
    selected: int
    corrections: int
    labelled: int
    train_new: int
    train_replay: int
    cloud_calls: int
    cloud_cost: float
    champion_final: float | None
    candidate_final: float | None
    diff_lower: float | None
    champion_after: str | None
    reason: str | None


class ReportDay(BaseModel):
    """One UTC day of service: turns, escalation rate, share answered locally, cloud calls and cost."""

    day: str
    turns: int
    escalation_rate: float | None  # None: a day with hand-offs but no turns
    local_share: float | None
    cloud_calls: int
    cloud_cost: float
    grounded_mean: float | None = None  # end drafts with a checkable fact: supported share
    ungrounded_share: float | None = None  # of those drafts, the share with an unsupported fact
    handoffs: int = 0  # conversations handed to a person this day
    handoffs_answered: int = 0
    handoff_wait_p50_s: float | None = None  # until the first staff reply
    handoff_wait_p95_s: float | None = None
    handoffs_abandoned: int = 0  # nobody answered before it ended (or within handoff.abandon_after_s)


class Report(BaseModel):
    rounds: list[ReportRound]
    days: list[ReportDay]


class ErrorBody(BaseModel):
    message: str
    type: str
    code: int


class ErrorResponse(BaseModel):
    error: ErrorBody


# -- hand-off to a person ------------------------------------------------------------------------
class HandoffStatus(BaseModel):
    id: int
    status: Literal["waiting", "claimed"]
    claimed_by: str | None = None


class HandoffMessage(BaseModel):
    id: int  # the cursor: ask for `after=<the last id you have>`
    handoff_id: int
    conversation_id: str
    sender: Literal["customer", "staff", "system"]  # system: "released" | "closed"
    staff: str | None = None
    text: str
    created_at: str


class CustomerHandoff(BaseModel):
    """A conversation's hand-off as its customer sees it: who holds it, and the new messages."""

    handoff: HandoffStatus | None  # None: the bot answers
    messages: list[HandoffMessage]
    cursor: int


class StaffAction(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff: StrictStr = Field(min_length=1, max_length=100)


class StaffReply(StaffAction):
    text: StrictStr = Field(min_length=1, max_length=4000)


class QueueMessage(BaseModel):
    sender: Literal["customer", "bot", "system", "staff"]
    text: str
    at: str
    staff: str | None = None


class QueueItem(BaseModel):
    id: int
    conversation_id: str
    reason: str  # requested | taken_over | the escalation reason that promised a person
    status: Literal["waiting", "claimed"]
    claimed_by: str | None
    requested_at: str
    waiting_s: float
    messages: list[QueueMessage]


class HandoffQueue(BaseModel):
    data: list[QueueItem]
    cursor: int  # the newest hand-off message id
