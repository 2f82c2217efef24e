import type {
	IDataObject,
	IExecuteFunctions,
	IHttpRequestOptions,
	INodeExecutionData,
	INodeType,
	INodeTypeDescription,
	IWebhookDescription,
	IWebhookFunctions,
	IWebhookResponseData,
	JsonObject,
} from 'n8n-workflow';
import {
	NodeApiError,
	NodeConnectionTypes,
	NodeOperationError,
	WAIT_INDEFINITELY,
	jsonParse,
} from 'n8n-workflow';

import type { Request, Risk, Verdict } from '../shared/api.generated';
import {
	type ApprovalOptions,
	type Step,
	buildRequest,
	callbackUrlFor,
	correlationMismatch,
	OUTPUT_NAMES,
	outputFor,
	REQUEST_ID_KEY,
	routeOutputs,
	waitUntil,
} from '../shared/approval';
import { parseKeyList, SignatureError, Verifier } from '../shared/standardWebhooks';

/**
 * The resume webhook, declared once as n8n's own send-and-wait nodes do: n8n calls `webhook()`
 * when something POSTs to `$execution.resumeUrl` + `/<node id>` while this node waits.
 */
export const SIGNOFF_WEBHOOKS: IWebhookDescription[] = [
	{
		name: 'default',
		httpMethod: 'POST',
		responseMode: 'onReceived',
		responseData: '',
		path: '={{ $nodeId }}',
		restartWebhook: true,
		isFullPath: true,
	},
];

const DEFAULT_GRACE_SECONDS = 300;

function serverUrl(value: unknown): string {
	return String(value ?? '').replace(/\/+$/, '');
}

function asObject(value: unknown, what: string, fail: (message: string) => never): IDataObject {
	let parsed = value;
	if (typeof value === 'string') {
		const text = value.trim();
		if (!text) {
			return {};
		}
		try {
			parsed = jsonParse(text);
		} catch {
			fail(`${what} is not valid JSON`);
		}
	}
	if (parsed === undefined || parsed === null) {
		return {};
	}
	if (typeof parsed !== 'object' || Array.isArray(parsed)) {
		fail(`${what} must be a JSON object`);
	}
	return parsed as IDataObject;
}

function stepOf(context: IExecuteFunctions | IWebhookFunctions, runIndex: number): Step {
	const node = context.getNode();
	const workflow = context.getWorkflow();
	return {
		workflowId: String(workflow.id ?? ''),
		workflowName: String(workflow.name ?? '').slice(0, 200),
		executionId: String(context.getExecutionId()),
		nodeId: node.id,
		nodeName: node.name,
		runIndex,
	};
}

export class SignoffApproval implements INodeType {
	description: INodeTypeDescription = {
		displayName: 'Signoff Approval',
		name: 'signoffApproval',
		icon: { light: 'file:signoff.svg', dark: 'file:signoff.dark.svg' },
		group: ['transform'],
		version: 1,
		subtitle: '={{ "approve " + $parameter["actionName"] }}',
		description:
			'Ask a human to approve an action in signoff, wait for the signed decision, then continue on Approved, Rejected or Timed out',
		defaults: {
			name: 'Signoff Approval',
		},
		// Deliberately not an AI tool: it pauses the whole execution until a human decides.
		usableAsTool: undefined,
		inputs: [NodeConnectionTypes.Main],
		outputs: [NodeConnectionTypes.Main, NodeConnectionTypes.Main, NodeConnectionTypes.Main],
		outputNames: OUTPUT_NAMES,
		credentials: [
			{
				name: 'signoffApi',
				required: true,
			},
		],
		webhooks: SIGNOFF_WEBHOOKS,
		waitingNodeTooltip:
			'Waiting for the decision in signoff. The workflow continues when signoff sends the signed decision.',
		properties: [
			{
				displayName:
					'One request per execution: all input items go to signoff as context. The workflow waits for the signed decision and continues on Approved, Rejected (also respond and cancel) or Timed out. Output Timed out also receives the original input if n8n itself stops waiting.',
				name: 'notice',
				type: 'notice',
				default: '',
			},
			{
				displayName: 'Action',
				name: 'actionName',
				type: 'string',
				default: '',
				required: true,
				placeholder: 'payments.release',
				description:
					'The exact action the workflow is about to take (a tool or API call). The approval binds to this name and its arguments.',
			},
			{
				displayName: 'Arguments',
				name: 'actionArguments',
				type: 'json',
				default: '{}',
				description:
					'The arguments of the action, as a JSON object (expressions allowed, evaluated for the first item). A reviewer may edit them: on the Approved output, run the action with signoff.effectiveArguments.',
			},
			{
				displayName: 'Business Object Type',
				name: 'businessObjectType',
				type: 'string',
				default: '',
				required: true,
				placeholder: 'invoice',
				description: 'The kind of business thing the action touches',
			},
			{
				displayName: 'Business Object ID',
				name: 'businessObjectId',
				type: 'string',
				default: '',
				required: true,
				placeholder: 'INV-1042',
				description: 'Which one it is',
			},
			{
				displayName: 'Summary',
				name: 'summary',
				type: 'string',
				typeOptions: { rows: 2 },
				default: '',
				description: 'What the reviewer reads first (display only: it never changes routing)',
			},
			{
				displayName: 'Options',
				name: 'options',
				type: 'collection',
				placeholder: 'Add Option',
				default: {},
				options: [
					{
						displayName: 'Allowed Decisions',
						name: 'allowedDecisions',
						type: 'multiOptions',
						default: [],
						description:
							'What the reviewer may answer (empty: what the server policy allows). A policy can narrow it further.',
						options: [
							{ name: 'Approve', value: 'approve' },
							{ name: 'Edit (Approve with Changed Arguments)', value: 'edit' },
							{ name: 'Reject', value: 'reject' },
							{ name: 'Respond (Answer with an Instruction)', value: 'respond' },
						],
					},
					{
						displayName: 'Business Object Attributes',
						name: 'businessObjectAttributes',
						type: 'json',
						default: '{}',
						description: 'Facts about the business object shown to the reviewer, as JSON',
					},
					{
						displayName: 'Business Object URL',
						name: 'businessObjectUrl',
						type: 'string',
						default: '',
						description: 'A link to the business object in its own system',
					},
					{
						displayName: 'Comment Required',
						name: 'commentRequired',
						type: 'options',
						default: 'never',
						options: [
							{ name: 'Always', value: 'always' },
							{ name: 'Never', value: 'never' },
							{ name: 'On Reject', value: 'on_reject' },
						],
						description: 'Whether the reviewer must write a comment',
					},
					{
						displayName: 'Extra Wait After Deadline (Seconds)',
						name: 'graceSeconds',
						type: 'number',
						typeOptions: { minValue: 0 },
						default: DEFAULT_GRACE_SECONDS,
						description:
							"How long n8n keeps waiting after signoff's deadline for the expired callback before it stops waiting by itself (then the original input goes to Timed out)",
					},
					{
						displayName: 'Initiator',
						name: 'initiator',
						type: 'string',
						default: '',
						description:
							'The person on whose behalf the workflow runs; signoff never lets them approve their own request',
					},
					{
						displayName: 'Maximum Wait (Seconds)',
						name: 'maxWaitSeconds',
						type: 'number',
						typeOptions: { minValue: 0 },
						default: 0,
						description:
							'Stop waiting after this long even if signoff has not decided (0: wait until the deadline plus the extra wait, or indefinitely when the request has no deadline)',
					},
					{
						displayName: 'Risk',
						name: 'risk',
						type: 'options',
						default: 'medium',
						options: [
							{ name: 'Critical', value: 'critical' },
							{ name: 'High', value: 'high' },
							{ name: 'Low', value: 'low' },
							{ name: 'Medium', value: 'medium' },
						],
						description: 'How much harm the action can do (a policy may raise it, never lower it)',
					},
					{
						displayName: 'Route to Role',
						name: 'routeRole',
						type: 'string',
						default: '',
						placeholder: 'finance-approver',
						description: 'The role that owns the action (a policy may route it elsewhere)',
					},
					{
						displayName: 'Timeout',
						name: 'timeout',
						type: 'string',
						default: '',
						placeholder: 'PT2H',
						description:
							'The SLA as an ISO-8601 duration (PT30M, PT2H, P1D). Without a decision by then signoff closes the request as expired and the workflow continues on Timed out. Empty: the server policy decides.',
					},
				],
			},
		],
	};

	async execute(this: IExecuteFunctions): Promise<INodeExecutionData[][]> {
		const items = this.getInputData();
		const node = this.getNode();
		const fail = (message: string): never => {
			throw new NodeOperationError(node, message, { itemIndex: 0 });
		};
		const options = this.getNodeParameter('options', 0, {}) as IDataObject;
		const approvalOptions: ApprovalOptions = {
			businessObjectUrl: options.businessObjectUrl as string | undefined,
			businessObjectAttributes: asObject(
				options.businessObjectAttributes,
				'Business Object Attributes',
				fail,
			),
			routeRole: options.routeRole as string | undefined,
			timeout: options.timeout as string | undefined,
			risk: options.risk as Risk | undefined,
			allowedDecisions: options.allowedDecisions as Verdict[] | undefined,
			commentRequired: options.commentRequired as ApprovalOptions['commentRequired'],
			initiator: options.initiator as string | undefined,
		};
		const parameters = {
			actionName: this.getNodeParameter('actionName', 0) as string,
			actionArguments: asObject(
				this.getNodeParameter('actionArguments', 0, '{}'),
				'Arguments',
				fail,
			),
			businessObjectType: this.getNodeParameter('businessObjectType', 0) as string,
			businessObjectId: String(this.getNodeParameter('businessObjectId', 0)),
			summary: this.getNodeParameter('summary', 0, '') as string,
			options: approvalOptions,
		};
		if (!parameters.actionName.trim()) {
			fail('Action is empty: name the action to gate, e.g. payments.release');
		}
		const step = stepOf(this, Number(this.evaluateExpression('{{ $runIndex }}', 0)) || 0);
		const resumeUrl = String(this.evaluateExpression('{{ $execution.resumeUrl }}', 0) ?? '');
		if (!resumeUrl.startsWith('http')) {
			fail(`n8n gave no resume URL for this execution (got "${resumeUrl}")`);
		}
		const body = buildRequest(parameters, items, step, callbackUrlFor(resumeUrl, step.nodeId));

		const credentials = await this.getCredentials('signoffApi');
		const request: IHttpRequestOptions = {
			method: 'POST',
			url: `${serverUrl(credentials.serverUrl)}/v1/requests`,
			body,
			json: true,
		};
		let created: Request;
		try {
			created = (await this.helpers.httpRequestWithAuthentication.call(
				this,
				'signoffApi',
				request,
			)) as Request;
		} catch (error) {
			throw new NodeApiError(node, error as JsonObject, {
				message: 'signoff did not accept the approval request',
			});
		}
		this.customData.set(REQUEST_ID_KEY, created.id);

		if (outputFor(created.status) !== undefined) {
			// Closed already: decided by a policy, or this is a retry of a run whose request closed.
			return routeOutputs(created);
		}
		const graceSeconds = Number(options.graceSeconds ?? DEFAULT_GRACE_SECONDS);
		const maxWaitSeconds = Number(options.maxWaitSeconds ?? 0);
		await this.putExecutionToWait(
			waitUntil(created.due_at, graceSeconds, maxWaitSeconds, new Date(), WAIT_INDEFINITELY),
		);
		return [[], [], []];
	}

	async webhook(this: IWebhookFunctions): Promise<IWebhookResponseData> {
		const req = this.getRequestObject();
		const res = this.getResponseObject();
		const refuse = (status: number, error: string, message: string): IWebhookResponseData => {
			res.status(status).json({ error, message });
			return { noWebhookResponse: true };
		};
		// Never throw from webhook(): n8n would resume the execution with the error. Anything
		// but a verified callback for this step answers an error and leaves the execution waiting.
		let body: Buffer;
		let verifier: Verifier;
		try {
			if (!req.rawBody) {
				await req.readRawBody();
			}
			body = req.rawBody ?? Buffer.alloc(0);
			const credentials = await this.getCredentials('signoffApi');
			verifier = new Verifier(parseKeyList(String(credentials.webhookSecret ?? '')));
		} catch (error) {
			// A configuration mistake: answer 500 so signoff retries once the credential is fixed.
			return refuse(500, 'misconfigured', `webhook verification key: ${(error as Error).message}`);
		}
		let event;
		try {
			event = verifier.verify(body, this.getHeaderData());
		} catch (error) {
			if (error instanceof SignatureError) {
				// Not signed by a key we pin: the execution keeps waiting, untouched.
				return refuse(401, 'unverified', error.message);
			}
			return refuse(500, 'error', (error as Error).message);
		}
		const request = event.data.request;
		const mismatch = correlationMismatch(request, stepOf(this, 0));
		if (mismatch !== undefined) {
			return refuse(409, 'refused', mismatch);
		}
		const output = outputFor(request.status);
		if (output === undefined) {
			return refuse(422, 'refused', `${request.id} is still ${request.status}`);
		}
		return {
			webhookResponse: { status: 'resumed', request_id: request.id, output: OUTPUT_NAMES[output] },
			workflowData: routeOutputs(request, event),
		};
	}
}
