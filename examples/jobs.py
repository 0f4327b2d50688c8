"""Example definitions: `oqron-master --app jobs` runs them (from this directory)."""

import time

from oqron import Retries, queue

emails = queue("emails", retries=Retries(max=3, strategy="exponential", base_delay=1.0))
reports = queue("reports", strategy="priority", timeout=120)


@emails.handler
def send_email(ctx):
    ctx.log.info("sending to %s", ctx.data["to"])
    return {"sent": True, "to": ctx.data["to"]}


@reports.handler
def build_report(ctx):
    ctx.progress(10, "collecting")
    time.sleep(ctx.data.get("seconds", 0.1))
    return {"rows": ctx.data.get("rows", 42)}
