/**
 * The agent and producer as a user runs them, on moto's SQS and S3 (see test/support/agentProcess.ts).
 */
import "../support/awsEnv.ts"
import { describeAgentProcess } from "../support/agentProcess.ts"

describeAgentProcess("moto")
