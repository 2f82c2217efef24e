/**
 * execute() of Signoff Report Outcome with a mocked n8n function context.
 */
import type { IDataObject, IExecuteFunctions, INodeExecutionData } from 'n8n-workflow';
import { NodeApiError, NodeOperationError } from 'n8n-workflow';
import { describe, expect, it, vi } from 'vitest';

import { SignoffOutcome } from '../nodes/SignoffOutcome/SignoffOutcome.node';
import { closedRequest, credentials, decision, SERVER_URL } from './helpers';

const node = new SignoffOutcome();
const REQUEST_ID = 'req_01JDTEST000000000000000001';

interface Call {
	method: string;
	url: string;
	body: IDataObject;
}

function context(options: {
	parameters: Record<string, unknown>;
	items?: INodeExecutionData[];
	answers: Array<{ statusCode: number; body: unknown }>;
	customData?: Record<string, string>;
}) {
	const calls: Call[] = [];
	const http = vi.fn(async (_type: string, request: IDataObject) => {
		calls.push({
			method: String(request.method),
			url: String(request.url),
			body: request.body as IDataObject,
		});
		expect(request.returnFullResponse).toBe(true);
		expect(request.ignoreHttpStatusErrors).toBe(true);
		const answer = options.answers.shift();
		if (answer === undefined) throw new Error('unexpected call');
		return answer;
	});
	const ctx = {
		getInputData: () => options.items ?? [{ json: { invoice_id: 'INV-1042' } }],
		getNode: () => ({
			id: 'n2',
			name: 'Report',
			type: 't',
			typeVersion: 1,
			position: [0, 0],
			parameters: {},
		}),
		getNodeParameter: (name: string, _i: number, fallback?: unknown) =>
			name in options.parameters ? options.parameters[name] : fallback,
		getCredentials: async () => credentials('whpk_unused'),
		helpers: { httpRequestWithAuthentication: http },
		customData: { get: (key: string) => options.customData?.[key] },
	};
	return { context: ctx as unknown as IExecuteFunctions, calls };
}

const reported = (status: 'executed' | 'skipped', detail: string) =>
	closedRequest('approved', [decision('approve')], {
		outcome: { status, detail, at: '2026-11-27T09:42:00Z' },
	});

describe('Signoff Report Outcome', () => {
	it('approve: reports executed once for a request many items share', async () => {
		const { context: ctx, calls } = context({
			parameters: { requestId: REQUEST_ID, status: 'executed', detail: 'payment released' },
			items: [{ json: { line: 1 } }, { json: { line: 2 } }],
			answers: [{ statusCode: 200, body: reported('executed', 'payment released') }],
		});
		const [out] = await node.execute.call(ctx);
		expect(calls).toEqual([
			{
				method: 'POST',
				url: `${SERVER_URL}/v1/requests/${REQUEST_ID}/outcome`,
				body: { status: 'executed', detail: 'payment released' },
			},
		]);
		expect(out.map((item) => item.json.line)).toEqual([1, 2]);
		expect(out[0].json.signoffOutcome).toMatchObject({
			requestId: REQUEST_ID,
			status: 'executed',
			alreadyReported: false,
			withdrawn: false,
		});
		expect(out.map((item) => item.pairedItem)).toEqual([{ item: 0 }, { item: 1 }]);
	});

	it('takes the request of this execution when Request ID is empty', async () => {
		const { context: ctx, calls } = context({
			parameters: { requestId: '', status: 'skipped' },
			answers: [{ statusCode: 200, body: reported('skipped', '') }],
			customData: { signoffRequestId: REQUEST_ID },
		});
		await node.execute.call(ctx);
		expect(calls[0].url).toBe(`${SERVER_URL}/v1/requests/${REQUEST_ID}/outcome`);
	});

	it('fails without a request id, or with something else', async () => {
		for (const requestId of ['', 'INV-1042']) {
			const { context: ctx } = context({
				parameters: { requestId, status: 'skipped' },
				answers: [],
			});
			await expect(node.execute.call(ctx)).rejects.toBeInstanceOf(NodeOperationError);
		}
	});

	it('a retried run: an outcome reported already is not an error', async () => {
		const { context: ctx } = context({
			parameters: { requestId: REQUEST_ID, status: 'executed' },
			answers: [
				{
					statusCode: 409,
					body: { error: { code: 'outcome_reported', message: 'already reported' } },
				},
			],
		});
		const [out] = await node.execute.call(ctx);
		expect(out[0].json.signoffOutcome).toMatchObject({ alreadyReported: true });
	});

	it('step_not_pending: n8n stopped waiting first, so the request is withdrawn, then reported', async () => {
		const { context: ctx, calls } = context({
			parameters: { requestId: REQUEST_ID, status: 'skipped', detail: 'n8n stopped waiting' },
			answers: [
				{ statusCode: 409, body: { error: { code: 'request_pending', message: 'pending' } } },
				{ statusCode: 200, body: closedRequest('cancelled', []) },
				{ statusCode: 200, body: reported('skipped', 'n8n stopped waiting') },
			],
		});
		const [out] = await node.execute.call(ctx);
		expect(calls.map((call) => call.url.split('/').pop())).toEqual([
			'outcome',
			'cancel',
			'outcome',
		]);
		expect(calls[1].body).toEqual({ reason: 'n8n stopped waiting' });
		expect(out[0].json.signoffOutcome).toMatchObject({ status: 'skipped', withdrawn: true });
	});

	it('never withdraws a pending request to report it executed', async () => {
		const { context: ctx, calls } = context({
			parameters: { requestId: REQUEST_ID, status: 'executed' },
			answers: [
				{ statusCode: 409, body: { error: { code: 'request_pending', message: 'still pending' } } },
			],
		});
		await expect(node.execute.call(ctx)).rejects.toBeInstanceOf(NodeApiError);
		expect(calls).toHaveLength(1);
	});

	it('other refusals fail the node with the server message', async () => {
		const { context: ctx } = context({
			parameters: { requestId: REQUEST_ID, status: 'skipped' },
			answers: [
				{ statusCode: 404, body: { error: { code: 'not_found', message: 'no such request' } } },
			],
		});
		await expect(node.execute.call(ctx)).rejects.toThrow(/no such request/);
	});
});
