/**
 * The pure parts of the Signoff Approval node: the request it creates, the correlation that ties
 * a callback to this execution and node, and how a closed request maps onto the node's outputs.
 * Kept free of n8n runtime calls so the unit tests can check them directly.
 */
import type { IDataObject, INodeExecutionData } from 'n8n-workflow';

import type {
	CallbackEvent,
	Decision,
	JsonValue,
	Request,
	RequestCreate,
	Risk,
	Status,
	Verdict,
} from './api.generated';

/** Output indexes, in the order the node declares them. */
export const TIMED_OUT = 0;
export const APPROVED = 1;
export const REJECTED = 2;
export const OUTPUT_NAMES = ['Timed out', 'Approved', 'Rejected'];

/** The execution's custom data key that holds the request id (for Signoff Report Outcome). */
export const REQUEST_ID_KEY = 'signoffRequestId';

/** Correlation fields the node sends and checks on the callback. */
export const EXECUTION_FIELD = 'n8n_execution_id';
export const NODE_FIELD = 'n8n_node_id';
export const WORKFLOW_FIELD = 'n8n_workflow_id';

/** Where the paused step is: what every callback must be correlated with. */
export interface Step {
	workflowId: string;
	executionId: string;
	nodeId: string;
	nodeName: string;
	workflowName: string;
	runIndex: number;
}

export interface ApprovalOptions {
	businessObjectUrl?: string;
	businessObjectAttributes?: IDataObject;
	routeRole?: string;
	timeout?: string;
	risk?: Risk;
	allowedDecisions?: Verdict[];
	commentRequired?: 'never' | 'on_reject' | 'always';
	initiator?: string;
}

export interface ApprovalParameters {
	actionName: string;
	actionArguments: IDataObject;
	businessObjectType: string;
	businessObjectId: string;
	summary: string;
	options: ApprovalOptions;
}

/** The idempotency key: a retry of the same node run never creates a second request. */
export function idempotencyKey(step: Step): string {
	return `n8n:${step.workflowId}:${step.executionId}:${step.nodeId}:${step.runIndex}`;
}

export function correlation(step: Step): Record<string, string> {
	return {
		[EXECUTION_FIELD]: step.executionId,
		[NODE_FIELD]: step.nodeId,
		[WORKFLOW_FIELD]: step.workflowId,
	};
}

function nonEmpty(value: string | undefined): string | undefined {
	const text = value?.trim();
	return text ? text : undefined;
}

/** The POST /v1/requests body: one request per execution, every input item as context. */
export function buildRequest(
	parameters: ApprovalParameters,
	items: INodeExecutionData[],
	step: Step,
	callbackUrl: string,
): RequestCreate {
	const { options } = parameters;
	const body: RequestCreate = {
		action: {
			name: parameters.actionName.trim(),
			arguments: parameters.actionArguments as Record<string, JsonValue>,
		},
		business_object: {
			type: parameters.businessObjectType.trim(),
			id: parameters.businessObjectId.trim(),
		},
		context: {
			items: items.map((item) => item.json as JsonValue),
			n8n: {
				workflow_id: step.workflowId,
				workflow_name: step.workflowName,
				execution_id: step.executionId,
				node: step.nodeName,
			},
		},
		agent: { name: step.workflowName || undefined, framework: 'n8n' },
		correlation: correlation(step),
		callback: { url: callbackUrl },
		idempotency_key: idempotencyKey(step),
	};
	const url = nonEmpty(options.businessObjectUrl);
	if (url) {
		body.business_object.url = url;
	}
	if (options.businessObjectAttributes && Object.keys(options.businessObjectAttributes).length) {
		body.business_object.attributes = options.businessObjectAttributes as Record<string, JsonValue>;
	}
	const summary = nonEmpty(parameters.summary);
	if (summary) {
		body.summary = summary;
	}
	const role = nonEmpty(options.routeRole);
	if (role) {
		body.route = { role };
	}
	const timeout = nonEmpty(options.timeout);
	if (timeout) {
		body.sla = timeout;
	}
	if (options.risk) {
		body.risk = options.risk;
	}
	if (options.allowedDecisions?.length) {
		body.allowed = options.allowedDecisions;
	}
	if (options.commentRequired) {
		body.comment_required = options.commentRequired;
	}
	const initiator = nonEmpty(options.initiator);
	if (initiator) {
		body.initiator = initiator;
	}
	return body;
}

/** The callback URL: n8n's signed resume URL for this execution, plus `/<nodeId>`. */
export function callbackUrlFor(resumeUrl: string, nodeId: string): string {
	return `${resumeUrl}/${nodeId}`;
}

/** Why a callback does not belong to this paused step, or undefined when it does. */
export function correlationMismatch(request: Request, step: Step): string | undefined {
	const got = request.correlation ?? {};
	const expected = correlation(step);
	for (const key of [EXECUTION_FIELD, NODE_FIELD] as const) {
		if (got[key] !== expected[key]) {
			return `the callback is for ${key}=${String(got[key])}, this is ${expected[key]}`;
		}
	}
	if (got[WORKFLOW_FIELD] !== undefined && got[WORKFLOW_FIELD] !== expected[WORKFLOW_FIELD]) {
		return `the callback is for ${WORKFLOW_FIELD}=${got[WORKFLOW_FIELD]}, this is ${expected[WORKFLOW_FIELD]}`;
	}
	return undefined;
}

/** Which output a closed request continues on; undefined while it is still pending. */
export function outputFor(status: Status): number | undefined {
	switch (status) {
		case 'approved':
			return APPROVED;
		case 'expired':
			return TIMED_OUT;
		case 'rejected':
		case 'responded':
		case 'cancelled':
			return REJECTED;
		default:
			return undefined;
	}
}

function finalDecision(request: Request): Decision | undefined {
	const decisions = request.decisions ?? [];
	return decisions.length ? decisions[decisions.length - 1] : undefined;
}

/** The decision as the output items carry it, under `signoff`. */
export function decisionSummary(request: Request, event?: CallbackEvent): IDataObject {
	const final = finalDecision(request);
	const edited = final?.verdict === 'edit' && final.arguments != null;
	const effective = edited ? final.arguments : (request.action.arguments ?? {});
	const output = outputFor(request.status);
	return {
		requestId: request.id,
		status: request.status,
		output: output === undefined ? null : OUTPUT_NAMES[output],
		approved: request.status === 'approved',
		verdict: final?.verdict ?? null,
		comment: final?.comment ?? null,
		reasonCode: final?.reason_code ?? null,
		// Not `arguments`: n8n's expression sandbox refuses that property name.
		effectiveArguments: effective as IDataObject,
		argumentsEdited: edited,
		decidedBy: final ? { user: final.decided_by.user, role: final.decided_by.role ?? null } : null,
		decidedVia: final?.via ?? null,
		decidedAt: final?.at ?? null,
		actionName: request.action.name,
		originalArguments: (request.action.arguments ?? {}) as IDataObject,
		businessObject: request.business_object as unknown as IDataObject,
		decisions: (request.decisions ?? []) as unknown as IDataObject[],
		dueAt: request.due_at ?? null,
		closedAt: request.closed_at ?? null,
		eventId: event?.id ?? null,
		eventType: event?.type ?? null,
	};
}

function isDataObject(value: JsonValue | undefined): value is { [key: string]: JsonValue } {
	return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The items the node continues with: the input items as they were sent to signoff (taken from
 * the signed request, so nothing unsigned flows on), each with the decision under `signoff`.
 */
export function outputItems(request: Request, event?: CallbackEvent): INodeExecutionData[] {
	const sent = request.context?.items;
	const inputs = Array.isArray(sent) && sent.length ? sent : [{}];
	const decision = decisionSummary(request, event);
	return inputs.map((json, index) => ({
		json: { ...(isDataObject(json) ? (json as IDataObject) : { value: json }), signoff: decision },
		pairedItem: { item: index },
	}));
}

/** The node's outputs for a closed request: its items on one output, the others empty. */
export function routeOutputs(request: Request, event?: CallbackEvent): INodeExecutionData[][] {
	const output = outputFor(request.status);
	const outputs: INodeExecutionData[][] = [[], [], []];
	if (output !== undefined) {
		outputs[output] = outputItems(request, event);
	}
	return outputs;
}

/** When n8n gives up waiting: signoff's deadline plus a grace, capped by a local limit. */
export function waitUntil(
	dueAt: string | null | undefined,
	graceSeconds: number,
	maxWaitSeconds: number,
	now: Date,
	indefinitely: Date,
): Date {
	let until = indefinitely;
	if (dueAt) {
		const due = Date.parse(dueAt);
		if (!Number.isNaN(due)) {
			until = new Date(due + Math.max(graceSeconds, 0) * 1000);
		}
	}
	if (maxWaitSeconds > 0) {
		const cap = new Date(now.getTime() + maxWaitSeconds * 1000);
		if (cap < until) {
			until = cap;
		}
	}
	return until;
}
