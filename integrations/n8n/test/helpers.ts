/**
 * Test doubles for n8n's function contexts, a Standard Webhooks signer (the server's side), and
 * signoff requests shaped by the generated API types.
 */
import {
	createHmac,
	createPrivateKey,
	createPublicKey,
	generateKeyPairSync,
	randomBytes,
	sign,
} from 'crypto';
import type {
	ICredentialDataDecryptedObject,
	IExecuteFunctions,
	INode,
	INodeExecutionData,
	IWebhookFunctions,
} from 'n8n-workflow';
import { vi } from 'vitest';

import type {
	CallbackEvent,
	Decision,
	Request,
	Status,
	Verdict,
} from '../nodes/shared/api.generated';

export const NODE: INode = {
	id: 'b7c1e2d4-0000-4000-8000-00000000a001',
	name: 'Ask finance',
	type: 'n8n-nodes-signoff.signoffApproval',
	typeVersion: 1,
	position: [0, 0],
	parameters: {},
};
export const WORKFLOW = { id: 'wf-invoice', name: 'Invoice payment', active: true };
export const EXECUTION_ID = '81';
export const RESUME_URL = 'http://127.0.0.1:5678/webhook-waiting/81?signature=resume-token';
export const SERVER_URL = 'http://signoff.test';

export const ARGS = {
	invoice_id: 'INV-1042',
	amount: '12500.00',
	currency: 'EUR',
	vendor_account: 'DE89370400440532013000',
};
export const EDITED = { ...ARGS, amount: '12250.00' };

/** A signing side like the server's: Ed25519 keys (whsk_/whpk_) and an HMAC secret (whsec_). */
export interface Keys {
	secret: string;
	public: string;
}

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export function newEd25519(): Keys {
	const { privateKey, publicKey } = generateKeyPairSync('ed25519');
	const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length);
	const raw = publicKey.export({ format: 'der', type: 'spki' }).subarray(12);
	return { secret: `whsk_${seed.toString('base64')}`, public: `whpk_${raw.toString('base64')}` };
}

export function newHmacSecret(): string {
	return `whsec_${randomBytes(32).toString('base64')}`;
}

/** The `webhook-signature` value for `body` under every key (v1a first, then v1). */
export function signatureHeader(
	keys: string[],
	id: string,
	timestamp: string,
	body: Buffer,
): string {
	const content = Buffer.concat([Buffer.from(`${id}.${timestamp}.`, 'utf8'), body]);
	const ed = keys
		.filter((key) => key.startsWith('whsk_'))
		.map((key) => {
			const raw = Buffer.from(key.slice(5), 'base64').subarray(0, 32);
			const privateKey = createPrivateKey({
				key: Buffer.concat([PKCS8_PREFIX, raw]),
				format: 'der',
				type: 'pkcs8',
			});
			return `v1a,${sign(null, content, privateKey).toString('base64')}`;
		});
	const mac = keys
		.filter((key) => key.startsWith('whsec_'))
		.map((key) => {
			const secret = Buffer.from(key.slice(6), 'base64');
			return `v1,${createHmac('sha256', secret).update(content).digest('base64')}`;
		});
	return [...ed, ...mac].join(' ');
}

export function headersFor(
	keys: string[],
	body: Buffer,
	id: string,
	timestamp = Math.floor(Date.now() / 1000),
): Record<string, string> {
	const ts = String(timestamp);
	return {
		'webhook-id': id,
		'webhook-timestamp': ts,
		'webhook-signature': signatureHeader(keys, id, ts, body),
		'content-type': 'application/json',
	};
}

/** The public key of a whsk_ key, as the verifier derives it (for cross-checks). */
export function publicOf(secret: string): string {
	const raw = Buffer.from(secret.slice(5), 'base64').subarray(0, 32);
	const key = createPublicKey(
		createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, raw]), format: 'der', type: 'pkcs8' }),
	);
	return `whpk_${key.export({ format: 'der', type: 'spki' }).subarray(12).toString('base64')}`;
}

// signoff requests -------------------------------------------------------------------------------

export const CORRELATION = {
	n8n_execution_id: EXECUTION_ID,
	n8n_node_id: NODE.id,
	n8n_workflow_id: WORKFLOW.id,
};

export const INPUT: INodeExecutionData[] = [
	{ json: { invoice_id: 'INV-1042', vendor: 'Acme GmbH', amount: '12500.00' } },
];

export function pendingRequest(overrides: Partial<Request> = {}): Request {
	return {
		id: 'req_01JDTEST000000000000000001',
		status: 'pending',
		created_at: '2026-11-27T09:00:00Z',
		due_at: '2026-11-27T11:00:00Z',
		closed_at: null,
		action: { name: 'payments.release', arguments: { ...ARGS } },
		business_object: { type: 'invoice', id: 'INV-1042', attributes: {} },
		summary: 'Release the payment of INV-1042',
		context: { items: INPUT.map((item) => item.json) as never },
		agent: { id: 'n8n-agent', name: 'Invoice payment', framework: 'n8n' },
		correlation: { ...CORRELATION },
		risk: 'high',
		route: { role: 'finance-approver' },
		sla: 'PT2H',
		on_timeout: 'reject',
		approvals: { mode: 'single', required: 1, separation_of_duties: true },
		allowed: ['approve', 'reject', 'edit', 'respond'],
		comment_required: 'never',
		callback: { url: `${RESUME_URL}/${NODE.id}` },
		decisions: [],
		...overrides,
	};
}

export function decision(verdict: Verdict, extra: Partial<Decision> = {}): Decision {
	return {
		id: 'dec_01JDTEST000000000000000001',
		request_id: 'req_01JDTEST000000000000000001',
		verdict,
		arguments: null,
		comment: null,
		reason_code: null,
		decided_by: { user: 'alice@example.com', role: 'finance-approver' },
		via: 'web',
		at: '2026-11-27T09:41:07Z',
		...extra,
	};
}

export function closedRequest(
	status: Status,
	decisions: Decision[],
	extra: Partial<Request> = {},
): Request {
	return pendingRequest({ status, decisions, closed_at: '2026-11-27T09:41:07Z', ...extra });
}

export function callbackEvent(
	request: Request,
	id = 'evt_01JDTEST000000000000000001',
): CallbackEvent {
	const type =
		request.status === 'expired'
			? 'request.expired'
			: request.status === 'cancelled'
				? 'request.cancelled'
				: 'request.decided';
	return { type, id, timestamp: '2026-11-27T09:41:07.512Z', data: { request } };
}

// n8n function contexts --------------------------------------------------------------------------

export function credentials(webhookSecret: string): ICredentialDataDecryptedObject {
	return { serverUrl: `${SERVER_URL}/`, apiKey: 'sk_test', webhookSecret };
}

export interface ExecuteDouble {
	context: IExecuteFunctions;
	http: ReturnType<typeof vi.fn>;
	putExecutionToWait: ReturnType<typeof vi.fn>;
	customData: Map<string, string>;
}

export function executeContext(options: {
	parameters: Record<string, unknown>;
	items?: INodeExecutionData[];
	answer?: unknown;
	error?: unknown;
	runIndex?: number;
}): ExecuteDouble {
	const http = vi.fn(async () => {
		if (options.error !== undefined) {
			throw options.error;
		}
		return options.answer;
	});
	const putExecutionToWait = vi.fn(async () => undefined);
	const customData = new Map<string, string>();
	const context = {
		getInputData: () => options.items ?? INPUT,
		getNode: () => NODE,
		getWorkflow: () => WORKFLOW,
		getExecutionId: () => EXECUTION_ID,
		getNodeParameter: (name: string, _index: number, fallback?: unknown) =>
			name in options.parameters ? options.parameters[name] : fallback,
		evaluateExpression: (expression: string) => {
			if (expression === '{{ $execution.resumeUrl }}') return RESUME_URL;
			if (expression === '{{ $runIndex }}') return options.runIndex ?? 0;
			throw new Error(`unexpected expression ${expression}`);
		},
		getCredentials: async () => credentials('whpk_unused'),
		helpers: { httpRequestWithAuthentication: http },
		customData: { set: (key: string, value: string) => customData.set(key, value) },
		putExecutionToWait,
		continueOnFail: () => false,
	};
	return {
		context: context as unknown as IExecuteFunctions,
		http,
		putExecutionToWait,
		customData,
	};
}

export interface WebhookDouble {
	context: IWebhookFunctions;
	response: { statusCode?: number; body?: unknown };
	readRawBody: ReturnType<typeof vi.fn>;
}

export function webhookContext(options: {
	body: Buffer;
	headers: Record<string, string>;
	webhookSecret: string;
	rawBodyRead?: boolean;
	executionId?: string;
	node?: INode;
	credentialsError?: Error;
}): WebhookDouble {
	const response: { statusCode?: number; body?: unknown } = {};
	const res = {
		status(code: number) {
			response.statusCode = code;
			return res;
		},
		json(body: unknown) {
			response.body = body;
			return res;
		},
	};
	const req: { rawBody?: Buffer; readRawBody: () => Promise<void> } = {
		rawBody: options.rawBodyRead === false ? undefined : options.body,
		readRawBody: async () => undefined,
	};
	const readRawBody = vi.fn(async () => {
		req.rawBody = options.body;
	});
	req.readRawBody = readRawBody;
	const context = {
		getRequestObject: () => req,
		getResponseObject: () => res,
		getHeaderData: () => options.headers,
		getCredentials: async () => {
			if (options.credentialsError) throw options.credentialsError;
			return credentials(options.webhookSecret);
		},
		getNode: () => options.node ?? NODE,
		getWorkflow: () => WORKFLOW,
		getExecutionId: () => options.executionId ?? EXECUTION_ID,
	};
	return { context: context as unknown as IWebhookFunctions, response, readRawBody };
}
