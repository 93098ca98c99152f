"""The design callhook replaces, kept small for the benchmark: FastAPI + SQLAlchemy
async (asyncpg) under uvicorn. Parses the Twilio form, checks the signature with the
official twilio RequestValidator, loads the call attempt through the ORM, stores the
event, moves the attempt (and on failures the contact) forward, commits.

Runs against the same schema as callhook (create it with `callhook migrate`).
Environment: DATABASE_URL (postgresql+asyncpg://...), TWILIO_AUTH_TOKEN,
PUBLIC_BASE_URL, DB_SCHEMA.
"""
import json
import os
import uuid
from datetime import datetime, timezone

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sqlalchemy import Column, DateTime, Integer, String, Text, select
from sqlalchemy.dialects.postgresql import JSONB, UUID, insert
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlalchemy.orm import declarative_base
from twilio.request_validator import RequestValidator

SCHEMA = os.environ.get("DB_SCHEMA", "public")
engine = create_async_engine(
    os.environ["DATABASE_URL"],
    pool_size=int(os.environ.get("DB_POOL", "10")),
    connect_args={"server_settings": {"search_path": SCHEMA}},
)
Session = async_sessionmaker(engine, expire_on_commit=False)
validator = RequestValidator(os.environ["TWILIO_AUTH_TOKEN"])
PUBLIC = os.environ.get("PUBLIC_BASE_URL", "https://hooks.example.com")
Base = declarative_base()

STATUS = {"queued": "initiated", "initiated": "initiated", "ringing": "ringing", "in-progress": "answered",
          "completed": "completed", "busy": "busy", "no-answer": "no_answer", "failed": "failed", "canceled": "failed"}
RANK = {"initiated": 0, "ringing": 1, "answered": 2, "completed": 3, "busy": 3, "no_answer": 3, "failed": 3}


class CallAttempt(Base):
    __tablename__ = "call_attempts"
    id = Column(UUID(as_uuid=True), primary_key=True)
    call_id = Column(Text, unique=True)
    contact_id = Column(UUID(as_uuid=True))
    provider_call_id = Column(Text)
    status = Column(Text)
    provider_raw_status = Column(Text)
    answered_at = Column(DateTime(timezone=True))
    ended_at = Column(DateTime(timezone=True))
    duration_seconds = Column(Integer)
    outcome = Column(Text)


class Contact(Base):
    __tablename__ = "contacts"
    id = Column(UUID(as_uuid=True), primary_key=True)
    state = Column(Text)
    attempts_count = Column(Integer)
    last_outcome = Column(Text)
    updated_at = Column(DateTime(timezone=True))


class TelephonyEvent(Base):
    __tablename__ = "telephony_events"
    id = Column(UUID(as_uuid=True), primary_key=True)
    provider = Column(Text)
    dedupe_key = Column(Text, unique=True)
    call_id = Column(Text)
    provider_call_id = Column(Text)
    event_type = Column(Text)
    provider_status = Column(Text)
    received_at = Column(DateTime(timezone=True))
    disposition = Column(String)
    payload = Column(JSONB)


app = FastAPI()


@app.post("/webhooks/telephony/events")
async def webhook(request: Request):
    form = await request.form()
    params = {k: v for k, v in form.items()}
    url = PUBLIC + request.url.path + ("?" + request.url.query if request.url.query else "")
    if not validator.validate(url, params, request.headers.get("x-twilio-signature", "")):
        return JSONResponse({"error": {"code": "invalid_signature"}}, status_code=403)
    call_sid, raw = params.get("CallSid"), params.get("CallStatus")
    if not call_sid or not raw:
        return JSONResponse({"error": {"code": "missing_field"}}, status_code=400)
    status = STATUS.get(raw)
    call_id = request.query_params.get("call_id")
    now = datetime.now(timezone.utc)
    async with Session() as session:
        async with session.begin():
            attempt = (await session.execute(
                select(CallAttempt).where(CallAttempt.call_id == call_id).with_for_update())).scalar_one_or_none()
            inserted = await session.execute(insert(TelephonyEvent).values(
                id=uuid.uuid4(), provider="twilio", dedupe_key=f"twilio:{call_sid}:{raw}", call_id=call_id,
                provider_call_id=call_sid, event_type=f"call.{status}" if status else None, provider_status=raw,
                received_at=now, disposition="applied" if attempt else "deferred", payload=params,
            ).on_conflict_do_nothing(index_elements=["dedupe_key"]))
            if inserted.rowcount == 0:
                return {"status": "duplicate", "call_id": call_id}
            if attempt is None:
                return JSONResponse({"status": "deferred", "call_id": call_id}, status_code=202)
            if status and RANK[status] > RANK[attempt.status]:
                attempt.status = status
                attempt.provider_raw_status = raw
                attempt.provider_call_id = attempt.provider_call_id or call_sid
                if status == "answered":
                    attempt.answered_at = now
                if RANK[status] == 3:
                    attempt.ended_at = now
                    if params.get("CallDuration"):
                        attempt.duration_seconds = int(params["CallDuration"])
                if status in ("busy", "no_answer", "failed"):
                    attempt.outcome = status
                    contact = await session.get(Contact, attempt.contact_id, with_for_update=True)
                    contact.last_outcome = status
                    contact.state = "pending" if contact.attempts_count < 3 else "not_reached"
                    contact.updated_at = now
                return {"status": "processed", "call_id": call_id}
            return {"status": "ignored", "reason": "stale", "call_id": call_id}
