"""Tell people about leads: Slack, email (SMTP) and a signed generic webhook.

A rep who is not told about a lead cannot call it back within the SLA, so every message
carries what they need to act without opening the CRM: who the lead is (name, company,
size, country, source, score), the SLA deadline in the rep's own time zone, and *why this
rep got it* (the decision's reason). One :class:`Message` model feeds every channel; one
template function builds each kind of message (:func:`assigned`, :func:`reminder`,
:func:`escalation`, :func:`reassigned_from`, :func:`parked`).

Delivery is at-least-once and never blocks routing: :class:`Notifier` sends to each enabled
channel independently and returns a result per channel, classified as *retriable* (Slack
``ratelimited`` with its Retry-After, HTTP 5xx/429, SMTP 4xx, connection errors, timeouts)
or *fatal* (bad token, unknown channel, SMTP 5xx, a TLS certificate that does not verify),
so the caller retries only what can succeed. :func:`send_once` makes a retried task skip the
channels that already succeeded.

Settings come from the ``notifications:`` section of the routing YAML
(:class:`NotificationsConfig`); secrets only from the environment: ``SLACK_BOT_TOKEN``,
``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_USERNAME``, ``SMTP_PASSWORD``, ``SMTP_FROM``,
``LEADROUTE_WEBHOOK_SECRET``. The webhook signature recipe is in :func:`sign_webhook` and
``docs/operations.md``.
"""
