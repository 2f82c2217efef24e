"""The ops crew."""

from crewai import Agent, Crew, Task
from crewai.hooks import before_tool_call
from ops.cleanup import purge_stale_tickets
from signoff_crewai import approval_guardrail, gated_tool
from tools import (
    DeployServiceTool,
    DropTableTool,
    QueryWarehouseTool,
    check_balance,
    notify_customers,
    rotate_api_keys,
    search_runbooks,
    wire_vendor_payment,
)


@before_tool_call
def confirm_key_rotation(context):
    if context.tool_name == "Rotate API keys":
        return input("Rotate keys? [y/N] ").strip().lower() == "y"
    return None


deploy = gated_tool(DeployServiceTool(), action="deploy.service", route="sre-oncall")
wire = gated_tool(wire_vendor_payment, action="payments.wire", route="finance-approver")

ops_agent = Agent(
    role="Ops engineer",
    goal="Keep the platform healthy",
    backstory="An SRE.",
    tools=[deploy, DropTableTool(), QueryWarehouseTool(), search_runbooks, rotate_api_keys],
)
finance_agent = Agent(
    role="Payables clerk", goal="Pay vendors on time", backstory="AP.", tools=[wire, check_balance]
)
comms_agent = Agent(role="Customer comms", goal="Inform customers", backstory="Support.")

announce = Task(
    description="Tell affected customers about the maintenance window.",
    expected_output="The message that was sent",
    agent=comms_agent,
    tools=[notify_customers],
    human_input=True,
)
cleanup = Task(
    description="Close out the maintenance.",
    expected_output="A summary",
    agent=ops_agent,
    guardrail=approval_guardrail(action="tickets.purge", route="sre-oncall"),
    callback=purge_stale_tickets,
)
crew = Crew(agents=[ops_agent, finance_agent, comms_agent], tasks=[announce, cleanup])
