export declare const NODE_FLOOR: string;
export declare function belowNodeFloor(version?: string): boolean;
