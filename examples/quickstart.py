"""Add a few jobs and run them in this process (memory adapters: no server needed)."""

from oqron import OqronKit, Runner, define_config, queue

OqronKit.init(define_config(storage="memory://", broker="memory://", lock="memory://"))
emails = queue("emails")


@emails.handler
def send_email(ctx):
    ctx.progress(50, "rendered")
    return {"sent": ctx.data["to"]}


job = emails.add({"to": "a@example.com"})
Runner().run_until_empty(raise_errors=True)
print(job.refresh().status, job.return_value)
