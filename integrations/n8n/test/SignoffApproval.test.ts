/**
 * execute() and webhook() of the Signoff Approval node with mocked n8n function contexts.
 *
 * Test names start with the adapter conformance scenario they cover
 * (tests/integrations/conformance/suite.py); the real-n8n end-to-end run is
 * tests/integrations/n8n (nox -s n8n).
 */
import type { IDataObject, INodeExecutionData } from 'n8n-workflow';
import { NodeApiError, NodeOperationError, WAIT_INDEFINITELY } from 'n8n-workflow';
import { describe, expect, it } from 'vitest';

import { SignoffApproval } from '../nodes/SignoffApproval/SignoffApproval.node';
import type { Request, RequestCreate } from '../nodes/shared/api.generated';
import { APPROVED, REJECTED, TIMED_OUT, waitUntil } from '../nodes/shared/approval';
import {
	ARGS,
	callbackEvent,
	closedRequest,
	CORRELATION,
	decision,
	EDITED,
	executeContext,
	EXECUTION_ID,
	headersFor,
	INPUT,
	newEd25519,
	newHmacSecret,
	NODE,
	pendingRequest,
	RESUME_URL,
	SERVER_URL,
	webhookContext,
	WORKFLOW,
} from './helpers';

const node = new SignoffApproval();

const PARAMETERS = {
	actionName: 'payments.release',
	actionArguments: JSON.stringify(ARGS),
	businessObjectType: 'invoice',
	businessObjectId: 'INV-1042',
	summary: 'Release EUR 12,500.00 to Acme GmbH for INV-1042 (matches PO-7781)',
	options: {
		routeRole: 'finance-approver',
		timeout: 'PT2H',
		risk: 'high',
		businessObjectAttributes: '{"amount": "12500.00", "currency": "EUR", "vendor": "Acme GmbH"}',
	},
};

function sentBody(http: ReturnType<typeof executeContext>['http']): RequestCreate {
	expect(http).toHaveBeenCalledTimes(1);
	const [credentialType, options] = http.mock.calls[0] as unknown as [string, IDataObject];
	expect(credentialType).toBe('signoffApi');
	expect(options.method).toBe('POST');
	expect(options.url).toBe(`${SERVER_URL}/v1/requests`);
	return options.body as RequestCreate;
}

describe('execute()', () => {
	it('approve: creates one request with every input item as context, then waits', async () => {
		const items: INodeExecutionData[] = [
			...INPUT,
			{ json: { invoice_id: 'INV-1042', note: 'second line item' } },
		];
		const created = pendingRequest();
		const double = executeContext({ parameters: PARAMETERS, items, answer: created });

		const outputs = await node.execute.call(double.context);

		const body = sentBody(double.http);
		expect(body.action).toEqual({ name: 'payments.release', arguments: ARGS });
		expect(body.business_object).toEqual({
			type: 'invoice',
			id: 'INV-1042',
			attributes: { amount: '12500.00', currency: 'EUR', vendor: 'Acme GmbH' },
		});
		expect(body.context?.items).toEqual(items.map((item) => item.json));
		expect(body.correlation).toEqual(CORRELATION);
		expect(body.callback).toEqual({ url: `${RESUME_URL}/${NODE.id}` });
		expect(body.route).toEqual({ role: 'finance-approver' });
		expect(body.sla).toBe('PT2H');
		expect(body.risk).toBe('high');
		expect(body.agent).toEqual({ name: WORKFLOW.name, framework: 'n8n' });
		expect(body.idempotency_key).toBe(`n8n:${WORKFLOW.id}:${EXECUTION_ID}:${NODE.id}:0`);
		expect(body.summary).toContain('INV-1042');
		expect(double.customData.get('signoffRequestId')).toBe(created.id);
		// signoff owns the deadline: n8n waits until it plus the default 300 s grace.
		expect(double.putExecutionToWait).toHaveBeenCalledWith(new Date('2026-11-27T11:05:00Z'));
		expect(outputs).toEqual([[], [], []]);
	});

	it('one request per gated call: a retried run sends the same idempotency key', async () => {
		const first = executeContext({ parameters: PARAMETERS, answer: pendingRequest() });
		const retry = executeContext({ parameters: PARAMETERS, answer: pendingRequest() });
		await node.execute.call(first.context);
		await node.execute.call(retry.context);
		expect(sentBody(retry.http).idempotency_key).toBe(sentBody(first.http).idempotency_key);
		const loop = executeContext({ parameters: PARAMETERS, answer: pendingRequest(), runIndex: 1 });
		await node.execute.call(loop.context);
		expect(sentBody(loop.http).idempotency_key).toMatch(/:1$/);
	});

	it('leaves out the options that are not set, so the server policy decides them', async () => {
		const double = executeContext({
			parameters: { ...PARAMETERS, summary: '', options: {} },
			answer: pendingRequest({ due_at: null }),
		});
		await node.execute.call(double.context);
		const body = sentBody(double.http);
		for (const key of ['route', 'sla', 'risk', 'allowed', 'summary', 'initiator'] as const) {
			expect(body[key]).toBeUndefined();
		}
		expect(body.business_object.attributes).toBeUndefined();
		// No deadline anywhere: wait until a callback comes.
		expect(double.putExecutionToWait).toHaveBeenCalledWith(WAIT_INDEFINITELY);
	});

	it('sends allowed decisions, comment rule and initiator when set', async () => {
		const double = executeContext({
			parameters: {
				...PARAMETERS,
				options: {
					allowedDecisions: ['approve', 'reject'],
					commentRequired: 'on_reject',
					initiator: 'carol@example.com',
					businessObjectUrl: 'https://erp.example.com/invoices/INV-1042',
				},
			},
			answer: pendingRequest(),
		});
		await node.execute.call(double.context);
		const body = sentBody(double.http);
		expect(body.allowed).toEqual(['approve', 'reject']);
		expect(body.comment_required).toBe('on_reject');
		expect(body.initiator).toBe('carol@example.com');
		expect(body.business_object.url).toBe('https://erp.example.com/invoices/INV-1042');
	});

	it('a maximum wait caps how long n8n waits', async () => {
		const double = executeContext({
			parameters: { ...PARAMETERS, options: { maxWaitSeconds: 60 } },
			answer: pendingRequest({ due_at: '2999-01-01T00:00:00Z' }),
		});
		const before = Date.now();
		await node.execute.call(double.context);
		const until = (double.putExecutionToWait.mock.calls[0] as unknown as [Date])[0];
		expect(until.getTime()).toBeGreaterThanOrEqual(before + 60_000);
		expect(until.getTime()).toBeLessThanOrEqual(Date.now() + 60_000);
	});

	it('a request a policy closed at once continues without waiting', async () => {
		const auto = closedRequest('approved', [
			decision('approve', { via: 'policy', decided_by: { user: 'policy' } }),
		]);
		const double = executeContext({ parameters: PARAMETERS, answer: auto });
		const outputs = await node.execute.call(double.context);
		expect(double.putExecutionToWait).not.toHaveBeenCalled();
		expect(outputs[APPROVED]).toHaveLength(1);
		expect(outputs[TIMED_OUT]).toEqual([]);
		expect(outputs[REJECTED]).toEqual([]);
		expect((outputs[APPROVED][0].json.signoff as IDataObject).decidedVia).toBe('policy');
	});

	it('fails with NodeApiError when signoff refuses the request', async () => {
		const double = executeContext({
			parameters: PARAMETERS,
			error: { httpCode: '422', message: 'callback.url is not allowed' },
		});
		await expect(node.execute.call(double.context)).rejects.toBeInstanceOf(NodeApiError);
		expect(double.putExecutionToWait).not.toHaveBeenCalled();
	});

	it('fails with NodeOperationError on arguments that are not a JSON object', async () => {
		for (const actionArguments of ['{not json', '[1, 2]', '"text"']) {
			const double = executeContext({
				parameters: { ...PARAMETERS, actionArguments },
				answer: pendingRequest(),
			});
			await expect(node.execute.call(double.context)).rejects.toBeInstanceOf(NodeOperationError);
			expect(double.http).not.toHaveBeenCalled();
		}
	});

	it('accepts arguments given as an object (an expression result)', async () => {
		const double = executeContext({
			parameters: { ...PARAMETERS, actionArguments: { ...ARGS } },
			answer: pendingRequest(),
		});
		await node.execute.call(double.context);
		expect(sentBody(double.http).action.arguments).toEqual(ARGS);
	});

	it('refuses an empty action name', async () => {
		const double = executeContext({ parameters: { ...PARAMETERS, actionName: ' ' } });
		await expect(node.execute.call(double.context)).rejects.toThrow(/Action is empty/);
	});
});

describe('waitUntil()', () => {
	const now = new Date('2026-11-27T09:00:00Z');
	it('is the deadline plus the grace, capped by the maximum wait', () => {
		expect(waitUntil('2026-11-27T10:00:00Z', 60, 0, now, WAIT_INDEFINITELY)).toEqual(
			new Date('2026-11-27T10:01:00Z'),
		);
		expect(waitUntil('2026-11-27T10:00:00Z', 60, 30, now, WAIT_INDEFINITELY)).toEqual(
			new Date('2026-11-27T09:00:30Z'),
		);
		expect(waitUntil(null, 60, 0, now, WAIT_INDEFINITELY)).toBe(WAIT_INDEFINITELY);
		expect(waitUntil('garbage', 60, 0, now, WAIT_INDEFINITELY)).toBe(WAIT_INDEFINITELY);
	});
});

// webhook() --------------------------------------------------------------------------------------

const server = newEd25519();

function deliver(
	request: Request,
	options: {
		keys?: string[];
		pinned?: string;
		timestamp?: number;
		tamper?: (body: Buffer) => Buffer;
		executionId?: string;
		rawBodyRead?: boolean;
	} = {},
) {
	const event = callbackEvent(request);
	const signed = Buffer.from(JSON.stringify(event));
	const headers = headersFor(options.keys ?? [server.secret], signed, event.id, options.timestamp);
	const body = options.tamper ? options.tamper(signed) : signed;
	return webhookContext({
		body,
		headers,
		webhookSecret: options.pinned ?? server.public,
		executionId: options.executionId,
		rawBodyRead: options.rawBodyRead,
	});
}

function routed(result: { workflowData?: INodeExecutionData[][] }): number {
	const outputs = result.workflowData ?? [];
	expect(outputs).toHaveLength(3);
	const filled = outputs.map((items, index) => (items.length ? index : -1)).filter((i) => i >= 0);
	expect(filled).toHaveLength(1);
	return filled[0];
}

function signoffOf(result: { workflowData?: INodeExecutionData[][] }): IDataObject {
	const items = (result.workflowData ?? []).find((output) => output.length) ?? [];
	return items[0].json.signoff as IDataObject;
}

describe('webhook()', () => {
	it('approve: a verified approval resumes on Approved with the decision on the item', async () => {
		const request = closedRequest('approved', [
			decision('approve', { comment: 'matches PO-7781' }),
		]);
		const double = deliver(request);
		const result = await node.webhook.call(double.context);
		expect(routed(result)).toBe(APPROVED);
		expect(result.webhookResponse).toEqual({
			status: 'resumed',
			request_id: request.id,
			output: 'Approved',
		});
		const item = result.workflowData![APPROVED][0];
		expect(item.json.invoice_id).toBe('INV-1042'); // the input item, as it was sent to signoff
		expect(item.pairedItem).toEqual({ item: 0 });
		expect(signoffOf(result)).toMatchObject({
			requestId: request.id,
			status: 'approved',
			approved: true,
			verdict: 'approve',
			comment: 'matches PO-7781',
			effectiveArguments: ARGS,
			argumentsEdited: false,
			decidedBy: { user: 'alice@example.com', role: 'finance-approver' },
			eventType: 'request.decided',
		});
		expect(double.response.statusCode).toBeUndefined();
	});

	it('edit: the edited arguments are the ones to run', async () => {
		const request = closedRequest('approved', [
			decision('edit', { arguments: EDITED, comment: 'credit note CN-88 applies' }),
		]);
		const result = await node.webhook.call(deliver(request).context);
		expect(routed(result)).toBe(APPROVED);
		expect(signoffOf(result)).toMatchObject({
			verdict: 'edit',
			effectiveArguments: EDITED,
			argumentsEdited: true,
			actionName: 'payments.release',
			originalArguments: ARGS,
		});
	});

	it('reject: continues on Rejected and the reason travels with the item', async () => {
		const request = closedRequest('rejected', [
			decision('reject', { comment: 'duplicate of INV-1007', reason_code: 'duplicate' }),
		]);
		const result = await node.webhook.call(deliver(request).context);
		expect(routed(result)).toBe(REJECTED);
		expect(signoffOf(result)).toMatchObject({
			approved: false,
			verdict: 'reject',
			comment: 'duplicate of INV-1007',
			reasonCode: 'duplicate',
		});
	});

	it('respond: the instruction goes to Rejected (the action must not run)', async () => {
		const instruction = 'ask for the 2% early-payment discount first';
		const request = closedRequest('responded', [decision('respond', { comment: instruction })]);
		const result = await node.webhook.call(deliver(request).context);
		expect(routed(result)).toBe(REJECTED);
		expect(signoffOf(result)).toMatchObject({
			status: 'responded',
			verdict: 'respond',
			comment: instruction,
		});
	});

	it('server_timeout: an expired request continues on Timed out (fails closed)', async () => {
		const request = closedRequest('expired', [
			decision('reject', { via: 'timeout', decided_by: { user: 'timeout' } }),
		]);
		const result = await node.webhook.call(deliver(request).context);
		expect(routed(result)).toBe(TIMED_OUT);
		expect(signoffOf(result)).toMatchObject({
			status: 'expired',
			approved: false,
			decidedVia: 'timeout',
			eventType: 'request.expired',
		});
	});

	it('a cancelled request continues on Rejected', async () => {
		const request = closedRequest('cancelled', []);
		const result = await node.webhook.call(deliver(request).context);
		expect(routed(result)).toBe(REJECTED);
		expect(signoffOf(result)).toMatchObject({
			status: 'cancelled',
			verdict: null,
			decidedBy: null,
		});
	});

	it('forged_signature: a key nobody pins gets 401 and the execution keeps waiting', async () => {
		const request = closedRequest('approved', [decision('approve')]);
		const double = deliver(request, { keys: [newEd25519().secret] });
		const result = await node.webhook.call(double.context);
		expect(result).toEqual({ noWebhookResponse: true });
		expect(double.response.statusCode).toBe(401);
		expect(double.response.body).toMatchObject({ error: 'unverified' });
	});

	it('stale_timestamp: a genuine signature from an hour ago gets 401', async () => {
		const request = closedRequest('approved', [decision('approve')]);
		const double = deliver(request, { timestamp: Math.floor(Date.now() / 1000) - 3600 });
		const result = await node.webhook.call(double.context);
		expect(result.workflowData).toBeUndefined();
		expect(double.response.statusCode).toBe(401);
		expect(String((double.response.body as IDataObject).message)).toMatch(/too old/);
	});

	it('tampered callback: a changed body gets 401 (rejected turned into approved)', async () => {
		const request = closedRequest('rejected', [decision('reject', { comment: 'no' })]);
		const double = deliver(request, {
			tamper: (body) =>
				Buffer.from(body.toString().replace('"status":"rejected"', '"status":"approved"')),
		});
		const result = await node.webhook.call(double.context);
		expect(result.workflowData).toBeUndefined();
		expect(double.response.statusCode).toBe(401);
	});

	it('step_not_pending: a verified callback for another execution is refused with 409', async () => {
		const request = closedRequest('approved', [decision('approve')], {
			correlation: { ...CORRELATION, n8n_execution_id: '80' },
		});
		const double = deliver(request);
		const result = await node.webhook.call(double.context);
		expect(result.workflowData).toBeUndefined();
		expect(double.response.statusCode).toBe(409);
		expect(String((double.response.body as IDataObject).message)).toContain('n8n_execution_id=80');
	});

	it('step_not_pending: a verified callback for another node of this execution gets 409', async () => {
		const request = closedRequest('approved', [decision('approve')], {
			correlation: { ...CORRELATION, n8n_node_id: 'another-node' },
		});
		const double = deliver(request);
		await node.webhook.call(double.context);
		expect(double.response.statusCode).toBe(409);
	});

	it('a pending request in a callback is refused', async () => {
		const double = deliver(pendingRequest());
		const result = await node.webhook.call(double.context);
		expect(result.workflowData).toBeUndefined();
		expect(double.response.statusCode).toBe(422);
	});

	it('verifies v1 (HMAC) with a whsec_ secret, and several pinned keys during a rotation', async () => {
		const secret = newHmacSecret();
		const request = closedRequest('approved', [decision('approve')]);
		const hmac = await node.webhook.call(
			deliver(request, { keys: [server.secret, secret], pinned: secret }).context,
		);
		expect(routed(hmac)).toBe(APPROVED);
		const next = newEd25519();
		const rotated = await node.webhook.call(
			deliver(request, { keys: [next.secret], pinned: `${server.public}, ${next.public}` }).context,
		);
		expect(routed(rotated)).toBe(APPROVED);
	});

	it('reads the raw body when n8n has not yet', async () => {
		const request = closedRequest('approved', [decision('approve')]);
		const double = deliver(request, { rawBodyRead: false });
		const result = await node.webhook.call(double.context);
		expect(double.readRawBody).toHaveBeenCalledTimes(1);
		expect(routed(result)).toBe(APPROVED);
	});

	it('answers 500 (so signoff retries) when the pinned key is unusable', async () => {
		const request = closedRequest('approved', [decision('approve')]);
		const double = deliver(request, { pinned: 'sk_not_a_webhook_key' });
		const result = await node.webhook.call(double.context);
		expect(result).toEqual({ noWebhookResponse: true });
		expect(double.response.statusCode).toBe(500);
	});

	it('never throws (n8n would resume with the error): a missing credential answers 500', async () => {
		const request = closedRequest('approved', [decision('approve')]);
		const event = callbackEvent(request);
		const body = Buffer.from(JSON.stringify(event));
		const double = webhookContext({
			body,
			headers: headersFor([server.secret], body, event.id),
			webhookSecret: server.public,
			credentialsError: new Error('Node does not have any credentials set'),
		});
		const result = await node.webhook.call(double.context);
		expect(result).toEqual({ noWebhookResponse: true });
		expect(double.response.statusCode).toBe(500);
	});

	it('items come from the signed request, one per input item, each with the decision', async () => {
		const request = closedRequest('approved', [decision('approve')], {
			context: { items: [{ line: 1 }, { line: 2 }, 'scalar'] },
		});
		const result = await node.webhook.call(deliver(request).context);
		const items = result.workflowData![APPROVED];
		expect(items.map((item) => item.json.line)).toEqual([1, 2, undefined]);
		expect(items[2].json.value).toBe('scalar');
		expect(items.map((item) => item.pairedItem)).toEqual([{ item: 0 }, { item: 1 }, { item: 2 }]);
		expect(items.every((item) => (item.json.signoff as IDataObject).requestId === request.id)).toBe(
			true,
		);
	});

	it('declares its resume webhook as n8n send-and-wait nodes do', () => {
		expect(node.description.webhooks).toEqual([
			expect.objectContaining({
				httpMethod: 'POST',
				path: '={{ $nodeId }}',
				restartWebhook: true,
				isFullPath: true,
				responseMode: 'onReceived',
			}),
		]);
		expect(node.description.outputNames).toEqual(['Timed out', 'Approved', 'Rejected']);
	});
});
